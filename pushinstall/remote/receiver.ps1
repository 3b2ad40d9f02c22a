# pushinstall push receiver: Windows PowerShell 3.0 and later. The contract is docs/ops.md
# ("file_chunk over a stream"). Started by WinRS as
#   powershell -NoProfile -NonInteractive -EncodedCommand <this text, UTF-16LE, base64>
# it reads its standard input as raw bytes: 12 ASCII digits N, N bytes of the gzipped C#
# core (ops.agent_core_held()), then what Pushinstall.Agent.Core.Receive reads (one
# base64 file_chunk request line, then the chunk's bytes). Nothing from the input is ever
# code: the core is loaded from the agent's cache (a DLL whose bytes hash to its name, as
# the shim's Import-PiCore checks) or compiled as C#, the rest is data. One output line.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$PiInput = [Console]::OpenStandardInput()

function Read-PiExactly {
    param([int]$Count)
    $buffer = New-Object byte[] $Count
    $done = 0
    while ($done -lt $Count) {
        $read = $PiInput.Read($buffer, $done, $Count - $done)
        if ($read -le 0) {
            throw 'standard input ended inside the agent core'
        }
        $done += $read
    }
    return ,$buffer
}

$length = [int]([Text.Encoding]::ASCII.GetString((Read-PiExactly 12)))
$packed = New-Object IO.MemoryStream(,(Read-PiExactly $length))
$unzip = New-Object IO.Compression.GZipStream($packed, [IO.Compression.CompressionMode]::Decompress)
$source = (New-Object IO.StreamReader($unzip, [Text.Encoding]::UTF8)).ReadToEnd()
$cache = "$env:ProgramFiles\pushinstall\cache"
try {
    if ($env:ProgramFiles -and [IO.Directory]::Exists($cache)) {
        $sha = New-Object Security.Cryptography.SHA256CryptoServiceProvider
        $hex = { ([BitConverter]::ToString($sha.ComputeHash($args[0])) -replace '-').ToLowerInvariant() }
        $hash = & $hex ([Text.Encoding]::UTF8.GetBytes($source))
        foreach ($path in [IO.Directory]::GetFiles($cache, "$hash-*.dll")) {
            $bytes = [IO.File]::ReadAllBytes($path)
            if ([IO.Path]::GetFileName($path) -eq "$hash-$(& $hex $bytes).dll") {
                [void][Reflection.Assembly]::Load($bytes)
                break
            }
        }
    }
} catch { }
if (-not ('Pushinstall.Agent.Core' -as [type])) {
    $references = @('System.Core', 'System.Web.Extensions', 'System.ServiceProcess', 'System.IO.Compression', 'System.IO.Compression.FileSystem')
    Add-Type -TypeDefinition $source -ReferencedAssemblies $references
}
[Pushinstall.Agent.Core]::Receive($PiInput)
