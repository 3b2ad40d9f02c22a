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

function Import-PiCore {
    # The compiled core is cached as <sha256 of the source>-<sha256 of the DLL>.dll in the
    # folder of [Pushinstall.Agent.Cache]::Folder: the DLL's bytes are hashed, then those very
    # bytes loaded, so a file changed after the check is never run. A miss compiles to a file
    # and caches it; where loading an assembly is refused, or anything else fails, Add-Type
    # compiles in memory as before. docs/ops.md "Defining the agent".
    $references = @('System.Core', 'System.Web.Extensions', 'System.ServiceProcess', 'System.IO.Compression', 'System.IO.Compression.FileSystem')
    $cache = "$env:ProgramFiles\pushinstall\cache"
    if ($env:ProgramFiles) {
        $sha = New-Object Security.Cryptography.SHA256CryptoServiceProvider
        $hex = { ([BitConverter]::ToString($sha.ComputeHash($args[0])) -replace '-').ToLowerInvariant() }
        $source = & $hex ([Text.Encoding]::UTF8.GetBytes($PushinstallAgentCore))
        if ([IO.Directory]::Exists($cache)) {
            foreach ($path in [IO.Directory]::GetFiles($cache, "$source-*.dll")) {
                try {
                    $bytes = [IO.File]::ReadAllBytes($path)
                    if ([IO.Path]::GetFileName($path) -eq "$source-$(& $hex $bytes).dll") {
                        [void][Reflection.Assembly]::Load($bytes)
                    }
                } catch {
                }
                if ('Pushinstall.Agent.Core' -as [type]) {
                    return
                }
            }
        }
        $temp = Join-Path ([IO.Path]::GetTempPath()) ('pushinstall-' + [guid]::NewGuid().ToString('N') + '.dll')
        try {
            Add-Type -TypeDefinition $PushinstallAgentCore -ReferencedAssemblies $references -OutputAssembly $temp -OutputType Library
            $bytes = [IO.File]::ReadAllBytes($temp)
            if (-not ('Pushinstall.Agent.Core' -as [type])) {
                [void][Reflection.Assembly]::Load($bytes)
            }
            [void][Pushinstall.Agent.Cache]::StoreAssembly($source, $bytes)
        } catch {
        }
        try {
            [IO.File]::Delete($temp)
        } catch {
        }
    }
    if (-not ('Pushinstall.Agent.Core' -as [type])) {
        Add-Type -TypeDefinition $PushinstallAgentCore -ReferencedAssemblies $references
    }
}

if (-not ('Pushinstall.Agent.Core' -as [type])) {
    Import-PiCore
}
[Pushinstall.Agent.Core]::PowerShellVersion = $PSVersionTable.PSVersion.ToString()

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
