# pushinstall agent shim: Windows PowerShell 3.0 and later (no classes, no ::new(), no
# PowerShell 5/7 syntax or cmdlets). The contract is docs/ops.md.
#
# The agent's logic is C# 5 (pushinstall/remote/agent/*.cs), compiled once per session by
# Add-Type; ops.agent_source() puts that source in $PushinstallAgentCore above this text. This
# shim loads it, hands requests to it and keeps the `script` op, which must be PowerShell.
#
# A request arrives as data: a parameter or pipeline input of Invoke-PushinstallOp, base64 of
# UTF-8 JSON. Nothing from a request is ever pasted into PowerShell source. The answer is one
# output line, PUSHINSTALL-ANSWER:<base64 of UTF-8 JSON>; nothing else this file emits matters.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

if (-not ('Pushinstall.Agent.Core' -as [type])) {
    $references = @('System.Core', 'System.Web.Extensions', 'System.ServiceProcess', 'System.IO.Compression', 'System.IO.Compression.FileSystem')
    Add-Type -TypeDefinition $PushinstallAgentCore -ReferencedAssemblies $references
}
[Pushinstall.Agent.Core]::PowerShellVersion = $PSVersionTable.PSVersion.ToString()
# download run_as: system compiles its SYSTEM task's worker from the same source
[Pushinstall.Agent.Core]::Source = $PushinstallAgentCore

function ConvertTo-PiText {
    param($Item)
    if ($Item -is [string]) {
        return $Item
    }
    return ($Item | Out-String).TrimEnd()
}

function Get-PiInnermostMessage {
    param($Failure)
    $current = $Failure.Exception
    while ($null -ne $current.InnerException) {
        $current = $current.InnerException
    }
    return $current.Message
}

function Invoke-PiScript {
    # The documented escape hatch: the user's source is code by definition. Its parameters
    # are data, in the hashtable $Parameters (also passed as the first argument).
    param([string]$Source, $Given)
    $Parameters = @{}
    foreach ($key in @($Given.Keys)) {
        $Parameters[$key] = $Given[$key]
    }
    $block = [scriptblock]::Create($Source)
    $output = New-Object System.Collections.ArrayList
    $errors = New-Object System.Collections.ArrayList
    try {
        & $block $Parameters 2>&1 | ForEach-Object {
            if ($_ -is [System.Management.Automation.ErrorRecord]) {
                [void]$errors.Add($_.ToString())
            } elseif ($null -ne $_) {
                [void]$output.Add((ConvertTo-PiText $_))
            }
        }
    } catch {
        [void]$errors.Add((Get-PiInnermostMessage $_))
    }
    # a hashtable is one pipeline object: the delegate hands C# exactly this
    return @{ output = $output.ToArray(); errors = $errors.ToArray(); success = ($errors.Count -eq 0) }
}

# The core calls back on this thread for `script` (also inside a batch).
[Pushinstall.Agent.Core]::Script = [Pushinstall.Agent.ScriptRunner] {
    param($Source, $Given)
    $ErrorActionPreference = 'Stop'
    Invoke-PiScript $Source $Given
}

function Invoke-PushinstallOp {
    <#
    .SYNOPSIS
    Runs one op request (base64 JSON, a parameter or pipeline input) and writes its answer line.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true, ValueFromPipeline = $true)]
        [string]$Request
    )
    process {
        $ProgressPreference = 'SilentlyContinue'
        [Pushinstall.Agent.Core]::Invoke($Request)
    }
}

function Get-PushinstallKey {
    <#
    .SYNOPSIS
    Writes this session's public key line: secret request fields are sealed to it.
    #>
    'PUSHINSTALL-KEY:' + [Pushinstall.Agent.Sealed]::PublicKey()
}

function Invoke-PushinstallLoop {
    <#
    .SYNOPSIS
    One agent process per connection (WinRS, SSH): writes the key line, then answers each
    request line read from stdin with one answer line, until an empty line or the end.
    #>
    # Lines are read as DATA by ReadLine, never parsed as script: the console host reads its
    # `-Command -` input through the same Console.In, one character at a time, so nothing it
    # has not executed yet is taken from under it.
    $out = [Console]::Out
    $out.WriteLine((Get-PushinstallKey))
    $out.Flush()
    while ($true) {
        $line = [Console]::In.ReadLine()
        if ([string]::IsNullOrEmpty($line)) {
            break
        }
        $ProgressPreference = 'SilentlyContinue'
        $out.WriteLine([Pushinstall.Agent.Core]::Invoke($line))
        $out.Flush()
    }
}
