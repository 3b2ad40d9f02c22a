"""The controller <-> target op protocol (ops.py) and the agent that answers it (agent.ps1)."""
