# pushinstall bootstrap: Windows PowerShell 3.0. Defines the agent in this session, then writes
# the session key line and, when given, runs one request. docs/ops.md "Defining the agent".
#
# All three values are data (parameters), never pasted into this text:
#   AgentHash  sha256 (hex) of the agent's UTF-8 text
#   Agent      that text, gzipped and base64-encoded; empty: use the cached copy
#   Request    one encoded request for Invoke-PushinstallOp; empty: none
# The agent's text is checked against AgentHash before it runs, whether it came with this
# pipeline or from the cache. A cached copy that is gone or differs answers the line
# PUSHINSTALL-AGENT-MISSING (and runs nothing): the controller then sends the agent.
param([string]$AgentHash, [string]$Agent, [string]$Request)
$ErrorActionPreference = 'Stop'
$PushinstallCache = "$env:ProgramFiles\pushinstall\cache"
$PiFile = "$PushinstallCache\$AgentHash.ps1"
$PiBytes = $null
# No pattern check of AgentHash: only 64 hex digits can equal a sha256 below.
if ($Agent) {
    $PiBytes = New-Object IO.MemoryStream
    (New-Object IO.Compression.GZipStream((New-Object IO.MemoryStream(, [Convert]::FromBase64String($Agent))), [IO.Compression.CompressionMode]::Decompress)).CopyTo($PiBytes)
    $PiBytes = $PiBytes.ToArray()
} elseif ([IO.File]::Exists($PiFile)) {
    $PiBytes = [IO.File]::ReadAllBytes($PiFile)
}
# the CryptoServiceProvider: SHA256Managed is refused under the FIPS policy
if ($null -eq $PiBytes -or ([BitConverter]::ToString((New-Object Security.Cryptography.SHA256CryptoServiceProvider).ComputeHash($PiBytes)) -replace '-') -ne $AgentHash) {
    'PUSHINSTALL-AGENT-MISSING'
    return
}
. ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString($PiBytes)))
if ($Agent) {
    [void][Pushinstall.Agent.Cache]::StoreAgent($PushinstallCache, $PiBytes)
}
Get-PushinstallKey
if ($Request) {
    Invoke-PushinstallOp -Request $Request
}
