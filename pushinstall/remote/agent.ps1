# pushinstall agent shim, Windows PowerShell 3.0+ (no classes, ::new() or PS 5/7 syntax); the
# contract is docs/ops.md. The logic is C# 5 (remote/agent/*.cs) in $PushinstallAgentCore,
# loaded once per session; this shim hands it requests and keeps the `script` op. A request
# is data (base64 JSON: a parameter, pipeline input or a stdin line), never pasted into source;
# the answer is one output line, PUSHINSTALL-ANSWER:<base64 JSON>.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Import-PiCore {
    # A cached DLL is <sha256 of source>-<sha256 of DLL>.dll: the bytes hashed are the bytes
    # loaded. A miss compiles to a file and caches it; any failure compiles in memory (ops.md).
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
                } catch { }
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
        } catch { }
        try { [IO.File]::Delete($temp) } catch { }
    }
    if (-not ('Pushinstall.Agent.Core' -as [type])) {
        Add-Type -TypeDefinition $PushinstallAgentCore -ReferencedAssemblies $references
    }
}

if (-not ('Pushinstall.Agent.Core' -as [type])) {
    Import-PiCore
}
[Pushinstall.Agent.Core]::PowerShellVersion = $PSVersionTable.PSVersion.ToString()
# modules are built against its cached DLL, and a SYSTEM task's worker compiled from it (ops.md)
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
    # Lines are DATA to ReadLine, never script: the console host reads `-Command -` input from
    # the same Console.In a character at a time, so it has no line of ours buffered.
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
