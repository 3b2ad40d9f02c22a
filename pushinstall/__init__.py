"""pushinstall: push the Azure Site Recovery Mobility service onto Windows fleets, agentless."""

__version__ = "0.1.0"
