# pushinstall bootstrap: Windows PowerShell 3.0. Defines the agent in this session, then writes
# the session key line and, when given, runs one request. docs/ops.md "Defining the agent".
#
# All three values are data (parameters), never pasted into this text:
#   Hash     sha256 (hex) of the agent's UTF-8 text
#   Agent    that text, gzipped (bytes); empty: use the cached copy
#   Request  one encoded request for Invoke-PushinstallOp; empty: none
# The agent's text is checked against Hash before it runs, whether it came with this
# pipeline or from the cache. A cached copy that is gone or differs answers the line
# PUSHINSTALL-AGENT-MISSING (and runs nothing): the controller then sends the agent.
param([string]$Hash, [byte[]]$Agent, [string]$Request)
# Errors do not stop it: a text that failed to expand or to be read fails its hash below
# (the shim sets 'Stop' for everything after).
$PiFile = "$env:ProgramFiles\pushinstall\cache\$Hash.ps1"
# No pattern check of Hash, and no reset of $PiText: only the agent hashes to Hash. Lines
# other than the key and answer lines are ignored (StoreAgent's True or False).
if ($Agent) {
    $PiText = New-Object IO.MemoryStream
    (New-Object IO.Compression.GZipStream((New-Object IO.MemoryStream(, $Agent)), [IO.Compression.CompressionMode]::Decompress)).CopyTo($PiText)
    $PiText = $PiText.ToArray()
} elseif ([IO.File]::Exists($PiFile)) {
    $PiText = [IO.File]::ReadAllBytes($PiFile)
}
# the CryptoServiceProvider: SHA256Managed is refused under the FIPS policy
if ($null -eq $PiText -or ([BitConverter]::ToString((New-Object Security.Cryptography.SHA256CryptoServiceProvider).ComputeHash($PiText)) -replace '-') -ne $Hash) {
    'PUSHINSTALL-AGENT-MISSING'
    return
}
. ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString($PiText)))
if ($Agent) {
    [Pushinstall.Agent.Cache]::StoreAgent($PiText)
}
Get-PushinstallKey
if ($Request) {
    Invoke-PushinstallOp -Request $Request
}
