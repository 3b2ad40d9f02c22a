# pushinstall agent: the op library that runs on the target.
#
# Windows PowerShell 3.0 and later (Server 2012 ships 3.0, 2012 R2 ships 4.0): no classes,
# no ::new(), no PowerShell 5/7 syntax or cmdlets. The contract is docs/ops.md.
#
# A request arrives as data: Invoke-PushinstallOp -Request '<base64 of UTF-8 JSON>'. Nothing
# from a request is ever pasted into PowerShell source. The answer is one output line,
# PUSHINSTALL-ANSWER:<base64 of UTF-8 JSON>; nothing else this file emits matters.
#
# Define this file in the session's own scope (PSRP AddScript without a local scope, or
# dot-source it), then call Invoke-PushinstallOp once per request.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# ---------------------------------------------------------------- entry point and dispatch

function Invoke-PushinstallOp {
    <#
    .SYNOPSIS
    Runs one op request (base64 JSON) and writes its answer line.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]
        [string]$Request
    )
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'
    try {
        $decoded = ConvertFrom-PiRequest $Request
        $answer = Invoke-PiRequest $decoded
    } catch {
        $answer = Get-PiErrorAnswer $_
    }
    try {
        $json = ConvertTo-PiJson $answer
    } catch {
        $json = ConvertTo-PiJson (Get-PiErrorAnswer $_)
    }
    'PUSHINSTALL-ANSWER:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json))
}

function Get-PiOpTable {
    # op name -> the function that answers it; the tests check this is exactly ops.OP_NAMES
    return @{
        'batch' = 'Invoke-PiBatch'
        'facts' = 'Get-PiFacts'
        'ensure_directory' = 'Invoke-PiEnsureDirectory'
        'download' = 'Invoke-PiDownload'
        'file_begin' = 'Invoke-PiFileBegin'
        'file_chunk' = 'Invoke-PiFileChunk'
        'file_end' = 'Invoke-PiFileEnd'
        'expand_archive' = 'Invoke-PiExpandArchive'
        'run_process' = 'Invoke-PiRunProcess'
        'write_secret' = 'Invoke-PiWriteSecret'
        'remove_file' = 'Invoke-PiRemoveFile'
        'set_service' = 'Invoke-PiSetService'
        'set_registry' = 'Invoke-PiSetRegistry'
        'reboot' = 'Invoke-PiReboot'
        'script' = 'Invoke-PiScript'
    }
}

function Get-PiFactTable {
    # fact kind -> the function that answers it; the tests check this is exactly ops.FACT_KINDS
    return @{
        'registry' = 'Get-PiRegistryFact'
        'file' = 'Get-PiFileFact'
        'service' = 'Get-PiServiceFact'
        'product' = 'Get-PiProductFact'
        'pending_reboot' = 'Get-PiPendingRebootFact'
        'os' = 'Get-PiOsFact'
        'disk' = 'Get-PiDiskFact'
        'tcp' = 'Get-PiTcpFact'
    }
}

function Invoke-PiRequest {
    param($Req)
    try {
        if (-not ($Req -is [System.Collections.IDictionary]) -or -not $Req.ContainsKey('op') -or -not ($Req['op'] -is [string])) {
            Stop-PiOp 'InvalidArgument' 'a request is a JSON object with a string "op"'
        }
        $op = [string]$Req['op']
        $table = Get-PiOpTable
        if (-not $table.ContainsKey($op)) {
            Stop-PiOp 'UnknownOp' ("unknown op '{0}'" -f $op)
        }
        $opArgs = $null
        if ($Req.ContainsKey('args')) {
            $opArgs = $Req['args']
        }
        if ($null -eq $opArgs) {
            $opArgs = @{}
        }
        if (-not ($opArgs -is [System.Collections.IDictionary])) {
            Stop-PiOp 'InvalidArgument' '"args" must be a JSON object'
        }
        $handler = $table[$op]
        $result = & $handler $opArgs
        return @{ ok = $true; result = $result }
    } catch {
        return Get-PiErrorAnswer $_
    }
}

function Invoke-PiBatch {
    param($OpArgs)
    $requests = @(Get-PiRequiredArg $OpArgs 'requests')
    $answers = New-Object System.Collections.ArrayList
    foreach ($one in $requests) {
        [void]$answers.Add((Invoke-PiRequest $one))
    }
    return ,($answers.ToArray())
}

# ---------------------------------------------------------------- arguments and errors

function Get-PiArg {
    param($OpArgs, [string]$Name, $Default = $null)
    if ($null -ne $OpArgs -and $OpArgs.ContainsKey($Name) -and $null -ne $OpArgs[$Name]) {
        return ,$OpArgs[$Name]
    }
    return ,$Default
}

function Get-PiRequiredArg {
    param($OpArgs, [string]$Name)
    if ($null -eq $OpArgs -or -not $OpArgs.ContainsKey($Name) -or $null -eq $OpArgs[$Name]) {
        Stop-PiOp 'InvalidArgument' ("missing argument '{0}'" -f $Name)
    }
    return ,$OpArgs[$Name]
}

function Stop-PiOp {
    # Throws an error that the answer reports with this type (see docs/ops.md).
    param([string]$Type, [string]$Message)
    $exception = New-Object System.Exception -ArgumentList $Message
    $exception.Data['PushinstallType'] = $Type
    throw $exception
}

function Find-PiException {
    param($Exception, [type]$Type)
    $current = $Exception
    while ($null -ne $current) {
        if ($current -is $Type) {
            return $current
        }
        $current = $current.InnerException
    }
    return $null
}

function Get-PiInnermostMessage {
    param($Failure)
    $current = $Failure
    if ($Failure -is [System.Management.Automation.ErrorRecord]) {
        $current = $Failure.Exception
    }
    while ($null -ne $current.InnerException) {
        $current = $current.InnerException
    }
    return $current.Message
}

function Get-PiErrorTypeOf {
    param($Exception)
    # indexing, not .Contains(): Exception.Data is an internal type behind IDictionary
    if ($null -ne $Exception.Data -and $null -ne $Exception.Data['PushinstallType']) {
        return [string]$Exception.Data['PushinstallType']
    }
    if ($Exception -is [System.UnauthorizedAccessException] -or $Exception -is [System.Security.SecurityException]) {
        return 'AccessDenied'
    }
    if ($Exception -is [System.IO.FileNotFoundException] -or $Exception -is [System.IO.DirectoryNotFoundException] -or $Exception -is [System.Management.Automation.ItemNotFoundException] -or $Exception -is [System.Management.Automation.DriveNotFoundException]) {
        return 'NotFound'
    }
    if ($Exception -is [System.IO.IOException]) {
        $code = [System.Runtime.InteropServices.Marshal]::GetHRForException($Exception) -band 0xFFFF
        if ($code -eq 112 -or $code -eq 39) {
            return 'DiskFull'
        }
        if ($code -eq 53 -or $code -eq 67) {
            return 'NotFound'
        }
    }
    if ($Exception -is [System.ComponentModel.Win32Exception]) {
        if ($Exception.NativeErrorCode -eq 2 -or $Exception.NativeErrorCode -eq 3) {
            return 'NotFound'
        }
        if ($Exception.NativeErrorCode -eq 5) {
            return 'AccessDenied'
        }
    }
    return $null
}

function Get-PiErrorAnswer {
    # The structured error answer for an ErrorRecord: the first exception in the chain that
    # has a known type names it; otherwise type Exception with the innermost message.
    param($Failure)
    $current = $Failure
    if ($Failure -is [System.Management.Automation.ErrorRecord]) {
        $current = $Failure.Exception
    }
    $type = 'Exception'
    $message = Get-PiInnermostMessage $current
    while ($null -ne $current) {
        $known = Get-PiErrorTypeOf $current
        if ($null -ne $known) {
            $type = $known
            $message = $current.Message
            break
        }
        $current = $current.InnerException
    }
    return @{ ok = $false; error = @{ type = $type; message = [string]$message } }
}

# ---------------------------------------------------------------- JSON (PS3-safe, own writer)

function ConvertFrom-PiRequest {
    param([string]$Encoded)
    $text = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($Encoded))
    $serializer = $null
    try {
        Add-Type -AssemblyName System.Web.Extensions
        $serializer = New-Object System.Web.Script.Serialization.JavaScriptSerializer
    } catch {
        $serializer = $null
    }
    if ($null -ne $serializer) {
        $serializer.MaxJsonLength = [int]::MaxValue
        $serializer.RecursionLimit = 64
        return ,$serializer.DeserializeObject($text)
    }
    return ConvertTo-PiPlain (ConvertFrom-Json $text)
}

function ConvertTo-PiPlain {
    # ConvertFrom-Json objects -> hashtables and arrays, the shapes JavaScriptSerializer gives.
    param($Value)
    if ($null -eq $Value) {
        return $null
    }
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        $table = @{}
        foreach ($property in $Value.PSObject.Properties) {
            $table[$property.Name] = ConvertTo-PiPlain $property.Value
        }
        return $table
    }
    if ($Value -is [System.Collections.IList]) {
        $items = New-Object System.Collections.ArrayList
        foreach ($item in $Value) {
            [void]$items.Add((ConvertTo-PiPlain $item))
        }
        return ,($items.ToArray())
    }
    return $Value
}

function ConvertTo-PiJsonString {
    param([string]$Text)
    $escaped = $Text.Replace('\', '\\').Replace('"', '\"')
    $evaluator = [System.Text.RegularExpressions.MatchEvaluator] {
        param($Match)
        '\u' + ([int][char]$Match.Value).ToString('x4')
    }
    return '"' + [regex]::Replace($escaped, '[\x00-\x1f\u2028\u2029]', $evaluator) + '"'
}

function Write-PiJson {
    param([System.Text.StringBuilder]$Builder, $Value)
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    if ($null -eq $Value -or $Value -is [System.DBNull]) {
        [void]$Builder.Append('null')
        return
    }
    if ($Value -is [bool]) {
        if ($Value) {
            [void]$Builder.Append('true')
        } else {
            [void]$Builder.Append('false')
        }
        return
    }
    if ($Value -is [string] -or $Value -is [char] -or $Value -is [System.Enum]) {
        [void]$Builder.Append((ConvertTo-PiJsonString ([string]$Value)))
        return
    }
    if ($Value -is [datetime]) {
        [void]$Builder.Append((ConvertTo-PiJsonString (Format-PiTime $Value)))
        return
    }
    $code = [int][System.Type]::GetTypeCode($Value.GetType())
    if ($code -ge 5 -and $code -le 12) {
        [void]$Builder.Append($Value.ToString($invariant))
        return
    }
    if ($code -eq 13 -or $code -eq 14) {
        $number = [double]$Value
        if ([double]::IsNaN($number) -or [double]::IsInfinity($number)) {
            [void]$Builder.Append('null')
        } else {
            [void]$Builder.Append($number.ToString('R', $invariant))
        }
        return
    }
    if ($code -eq 15) {
        [void]$Builder.Append($Value.ToString($invariant))
        return
    }
    if ($Value -is [System.Collections.IDictionary]) {
        [void]$Builder.Append('{')
        $first = $true
        foreach ($key in @($Value.Keys)) {
            if (-not $first) {
                [void]$Builder.Append(',')
            }
            $first = $false
            [void]$Builder.Append((ConvertTo-PiJsonString ([string]$key))).Append(':')
            Write-PiJson $Builder $Value[$key]
        }
        [void]$Builder.Append('}')
        return
    }
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        $table = @{}
        foreach ($property in $Value.PSObject.Properties) {
            $table[$property.Name] = $property.Value
        }
        Write-PiJson $Builder $table
        return
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        [void]$Builder.Append('[')
        $first = $true
        foreach ($item in $Value) {
            if (-not $first) {
                [void]$Builder.Append(',')
            }
            $first = $false
            Write-PiJson $Builder $item
        }
        [void]$Builder.Append(']')
        return
    }
    [void]$Builder.Append((ConvertTo-PiJsonString $Value.ToString()))
}

function ConvertTo-PiJson {
    param($Value)
    $builder = New-Object System.Text.StringBuilder
    Write-PiJson $builder $Value
    return $builder.ToString()
}

function Format-PiTime {
    param([datetime]$Time)
    return $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

# ---------------------------------------------------------------- files

function Get-PiSha256 {
    # SHA256CryptoServiceProvider: works where FIPS policy forbids SHA256Managed.
    param([string]$Path)
    $algorithm = New-Object System.Security.Cryptography.SHA256CryptoServiceProvider
    $stream = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
    try {
        $digest = $algorithm.ComputeHash($stream)
    } finally {
        $stream.Close()
        $algorithm.Clear()
    }
    return [BitConverter]::ToString($digest).Replace('-', '').ToLowerInvariant()
}

function New-PiTempPath {
    # A fresh temporary name beside $Destination (same volume, so the final move is a rename).
    param([string]$Destination, [string]$Suffix = '.pushinstall-tmp')
    $parent = [System.IO.Path]::GetDirectoryName($Destination)
    if ($parent -and -not [System.IO.Directory]::Exists($parent)) {
        [void][System.IO.Directory]::CreateDirectory($parent)
    }
    return $Destination + '.' + [Guid]::NewGuid().ToString('N').Substring(0, 12) + $Suffix
}

function Move-PiIntoPlace {
    param([string]$Temp, [string]$Destination)
    if ([System.IO.File]::Exists($Destination)) {
        [System.IO.File]::SetAttributes($Destination, [System.IO.FileAttributes]::Normal)
        [System.IO.File]::Delete($Destination)
    }
    [System.IO.File]::Move($Temp, $Destination)
}

function Remove-PiTemp {
    param([string]$Temp)
    if ($Temp -and [System.IO.File]::Exists($Temp)) {
        [System.IO.File]::Delete($Temp)
    }
}

function Invoke-PiEnsureDirectory {
    param($OpArgs)
    $path = [string](Get-PiRequiredArg $OpArgs 'path')
    if ([System.IO.Directory]::Exists($path)) {
        return @{ changed = $false }
    }
    if ([System.IO.File]::Exists($path)) {
        Stop-PiOp 'InvalidArgument' ('a file is in the way of the directory {0}' -f $path)
    }
    [void][System.IO.Directory]::CreateDirectory($path)
    return @{ changed = $true }
}

function Invoke-PiRemoveFile {
    param($OpArgs)
    $path = [string](Get-PiRequiredArg $OpArgs 'path')
    if ([System.IO.Directory]::Exists($path)) {
        Stop-PiOp 'InvalidArgument' ('{0} is a directory' -f $path)
    }
    if (-not [System.IO.File]::Exists($path)) {
        return @{ removed = $false }
    }
    [System.IO.File]::SetAttributes($path, [System.IO.FileAttributes]::Normal)
    [System.IO.File]::Delete($path)
    return @{ removed = $true }
}

function Test-PiPushTemp {
    param([string]$Path)
    if (-not $Path.EndsWith('.pushinstall-part', [StringComparison]::OrdinalIgnoreCase)) {
        Stop-PiOp 'InvalidArgument' 'temp_path must be a name that file_begin answered'
    }
    if (-not [System.IO.File]::Exists($Path)) {
        Stop-PiOp 'NotFound' ('no such temporary file: {0}' -f $Path)
    }
}

function Invoke-PiFileBegin {
    param($OpArgs)
    $destination = [string](Get-PiRequiredArg $OpArgs 'destination')
    $size = [int64](Get-PiRequiredArg $OpArgs 'size')
    [void](Get-PiRequiredArg $OpArgs 'sha256')
    $root = [System.IO.Path]::GetPathRoot($destination)
    if ($root -match '^[A-Za-z]:\\$') {
        $drive = New-Object System.IO.DriveInfo -ArgumentList $root
        if ($drive.IsReady -and $drive.AvailableFreeSpace -lt $size) {
            Stop-PiOp 'DiskFull' ('{0} needs {1} bytes, {2} are free' -f $root, $size, $drive.AvailableFreeSpace)
        }
    }
    $temp = New-PiTempPath $destination '.pushinstall-part'
    [System.IO.File]::WriteAllBytes($temp, [byte[]]@())
    return @{ temp_path = $temp }
}

function Invoke-PiFileChunk {
    param($OpArgs)
    $temp = [string](Get-PiRequiredArg $OpArgs 'temp_path')
    $offset = [int64](Get-PiRequiredArg $OpArgs 'offset')
    $data = [Convert]::FromBase64String([string](Get-PiRequiredArg $OpArgs 'data'))
    Test-PiPushTemp $temp
    $stream = [System.IO.File]::Open($temp, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
    try {
        [void]$stream.Seek($offset, [System.IO.SeekOrigin]::Begin)
        $stream.Write($data, 0, $data.Length)
        $length = $stream.Length
    } finally {
        $stream.Close()
    }
    return @{ size = $length }
}

function Invoke-PiFileEnd {
    param($OpArgs)
    $temp = [string](Get-PiRequiredArg $OpArgs 'temp_path')
    $destination = [string](Get-PiRequiredArg $OpArgs 'destination')
    $expected = ([string](Get-PiRequiredArg $OpArgs 'sha256')).ToLowerInvariant()
    Test-PiPushTemp $temp
    $actual = Get-PiSha256 $temp
    if ($actual -ne $expected) {
        Remove-PiTemp $temp
        Stop-PiOp 'HashMismatch' ('pushed file has sha256 {0}, expected {1}' -f $actual, $expected)
    }
    $changed = $true
    if ([System.IO.File]::Exists($destination) -and (Get-PiSha256 $destination) -eq $actual) {
        $changed = $false
        Remove-PiTemp $temp
    } else {
        Move-PiIntoPlace $temp $destination
    }
    $size = (New-Object System.IO.FileInfo -ArgumentList $destination).Length
    return @{ changed = $changed; sha256 = $actual; size = $size }
}

function Invoke-PiExpandArchive {
    param($OpArgs)
    $path = [string](Get-PiRequiredArg $OpArgs 'path')
    $destination = [string](Get-PiRequiredArg $OpArgs 'destination')
    if (-not [System.IO.File]::Exists($path)) {
        Stop-PiOp 'NotFound' ('no such archive: {0}' -f $path)
    }
    $hash = Get-PiSha256 $path
    $root = [System.IO.Path]::GetFullPath($destination).TrimEnd('\') + '\'
    $marker = $root + '.pushinstall-expanded'
    if ([System.IO.File]::Exists($marker) -and [System.IO.File]::ReadAllText($marker).Trim() -eq $hash) {
        return @{ changed = $false; files = 0 }
    }
    Add-Type -AssemblyName System.IO.Compression
    Add-Type -AssemblyName System.IO.Compression.FileSystem
    [void][System.IO.Directory]::CreateDirectory($root)
    $count = 0
    $zip = [System.IO.Compression.ZipFile]::OpenRead($path)
    try {
        foreach ($entry in $zip.Entries) {
            $target = [System.IO.Path]::GetFullPath([System.IO.Path]::Combine($root, $entry.FullName))
            if (-not $target.StartsWith($root, [StringComparison]::OrdinalIgnoreCase)) {
                Stop-PiOp 'InvalidArgument' ('archive entry {0} points outside the destination' -f $entry.FullName)
            }
            if ($entry.FullName.EndsWith('/') -or $entry.FullName.EndsWith('\')) {
                [void][System.IO.Directory]::CreateDirectory($target)
                continue
            }
            [void][System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($target))
            [System.IO.Compression.ZipFileExtensions]::ExtractToFile($entry, $target, $true)
            $count += 1
        }
    } finally {
        $zip.Dispose()
    }
    [System.IO.File]::WriteAllText($marker, $hash)
    return @{ changed = $true; files = $count }
}

# ---------------------------------------------------------------- download

function Get-PiShownUrl {
    # The URL without its query: a SAS token there is a credential.
    param([string]$Url)
    return $Url.Split('?')[0]
}

function Copy-PiHttp {
    param([string]$Url, [string]$Temp, [int]$TimeoutS)
    try {
        # Tls12 (3072) by number: the enum name is missing on old .NET 4.0 builds.
        [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.ServicePointManager]::SecurityProtocol -bor [System.Net.SecurityProtocolType]3072
    } catch {
        $null = $_
    }
    $shown = Get-PiShownUrl $Url
    $request = [System.Net.WebRequest]::Create($Url)
    $request.Timeout = [Math]::Min($TimeoutS, 2000000) * 1000
    $request.ReadWriteTimeout = [Math]::Min($TimeoutS, 2000000) * 1000
    try {
        $response = $request.GetResponse()
    } catch {
        $webError = Find-PiException $_.Exception ([System.Net.WebException])
        if ($null -ne $webError -and $null -ne $webError.Response) {
            $status = [int]$webError.Response.StatusCode
            Stop-PiOp 'DownloadFailed' ('HTTP {0} {1} from {2}' -f $status, $webError.Response.StatusDescription, $shown)
        }
        if ($null -ne $webError) {
            Stop-PiOp 'DownloadFailed' ('{0}: {1}' -f $shown, $webError.Message)
        }
        throw
    }
    try {
        $body = $response.GetResponseStream()
        $file = [System.IO.File]::Create($Temp)
        try {
            $body.CopyTo($file)
        } finally {
            $file.Close()
        }
    } finally {
        $response.Close()
    }
}

function Get-PiShareRoot {
    param([string]$Path)
    $match = [regex]::Match($Path, '^(\\\\[^\\]+\\[^\\]+)')
    if (-not $match.Success) {
        Stop-PiOp 'InvalidArgument' ('not a UNC path: {0}' -f $Path)
    }
    return $match.Groups[1].Value
}

function Copy-PiUnc {
    # With a credential the share is connected by WNetAddConnection2 (no drive letter): the
    # password goes from data to the API call, never onto a command line.
    param([string]$Source, [string]$Temp, $Credential)
    $shareRoot = Get-PiShareRoot $Source
    $connected = $false
    if ($null -ne $Credential) {
        $user = [string](Get-PiRequiredArg $Credential 'username')
        $password = [string](Get-PiRequiredArg $Credential 'password')
        Initialize-PiNative
        $code = [Pushinstall.NetworkShare]::Connect($shareRoot, $user, $password)
        if ($code -eq 0) {
            $connected = $true
        } elseif ($code -eq 1219) {
            # already connected to that server with other credentials: use that connection
            $connected = $false
        } elseif ($code -eq 5 -or $code -eq 86 -or $code -eq 1326 -or $code -eq 1327 -or $code -eq 1330 -or $code -eq 1331) {
            Stop-PiOp 'AccessDenied' ('cannot connect to {0} as {1} (error {2})' -f $shareRoot, $user, $code)
        } elseif ($code -eq 53 -or $code -eq 67 -or $code -eq 1203) {
            Stop-PiOp 'NotFound' ('share not found: {0} (error {1})' -f $shareRoot, $code)
        } else {
            Stop-PiOp 'DownloadFailed' ('cannot connect to {0} (error {1})' -f $shareRoot, $code)
        }
    }
    try {
        [System.IO.File]::Copy($Source, $Temp, $true)
    } finally {
        if ($connected) {
            [void][Pushinstall.NetworkShare]::Disconnect($shareRoot)
        }
    }
}

function Invoke-PiDownload {
    param($OpArgs)
    $source = [string](Get-PiRequiredArg $OpArgs 'source')
    $destination = [string](Get-PiRequiredArg $OpArgs 'destination')
    $expected = ([string](Get-PiArg $OpArgs 'sha256' '')).ToLowerInvariant()
    $credential = Get-PiArg $OpArgs 'credential' $null
    $timeoutS = [int](Get-PiArg $OpArgs 'timeout_s' 3600)
    $before = $null
    if ([System.IO.File]::Exists($destination)) {
        $before = Get-PiSha256 $destination
        if ($expected -ne '' -and $before -eq $expected) {
            $size = (New-Object System.IO.FileInfo -ArgumentList $destination).Length
            return @{ changed = $false; sha256 = $before; size = $size }
        }
    }
    $temp = New-PiTempPath $destination
    try {
        if ($source -match '^https?://') {
            Copy-PiHttp $source $temp $timeoutS
        } elseif ($source.StartsWith('\\')) {
            Copy-PiUnc $source $temp $credential
        } else {
            [System.IO.File]::Copy($source, $temp, $true)
        }
        $actual = Get-PiSha256 $temp
        if ($expected -ne '' -and $actual -ne $expected) {
            Stop-PiOp 'HashMismatch' ('{0} has sha256 {1}, expected {2}' -f (Get-PiShownUrl $source), $actual, $expected)
        }
        if ($actual -eq $before) {
            Remove-PiTemp $temp
        } else {
            Move-PiIntoPlace $temp $destination
        }
    } catch {
        Remove-PiTemp $temp
        throw
    }
    $size = (New-Object System.IO.FileInfo -ArgumentList $destination).Length
    return @{ changed = ($actual -ne $before); sha256 = $actual; size = $size }
}

# ---------------------------------------------------------------- native helpers (C#, compiled once)

function Initialize-PiNative {
    if ('Pushinstall.NetworkShare' -as [type]) {
        return
    }
    $source = @'
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace Pushinstall
{
    // Reads a stream to its end on its own thread, keeping only the last lines, so a chatty
    // process never blocks on a full pipe and memory stays bounded.
    public class TailReader
    {
        private readonly Queue<string> lines = new Queue<string>();
        private readonly TextReader reader;
        private readonly int keep;
        private readonly Thread thread;

        public TailReader(TextReader reader, int keep)
        {
            this.reader = reader;
            this.keep = keep;
            thread = new Thread(Run);
            thread.IsBackground = true;
            thread.Start();
        }

        private void Run()
        {
            try
            {
                string line;
                while ((line = reader.ReadLine()) != null)
                {
                    lock (lines)
                    {
                        lines.Enqueue(line);
                        while (lines.Count > keep) { lines.Dequeue(); }
                    }
                }
            }
            catch (IOException) { }
            catch (ObjectDisposedException) { }
        }

        public bool Wait(int milliseconds) { return thread.Join(milliseconds); }

        public string[] Tail()
        {
            lock (lines) { return lines.ToArray(); }
        }
    }

    public static class NetworkShare
    {
        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        private class NetResource
        {
            public int Scope;
            public int Type;
            public int DisplayType;
            public int Usage;
            public string LocalName;
            public string RemoteName;
            public string Comment;
            public string Provider;
        }

        [DllImport("mpr.dll", CharSet = CharSet.Unicode)]
        private static extern int WNetAddConnection2(NetResource resource, string password, string username, int flags);

        [DllImport("mpr.dll", CharSet = CharSet.Unicode)]
        private static extern int WNetCancelConnection2(string name, int flags, bool force);

        public static int Connect(string remoteName, string username, string password)
        {
            NetResource resource = new NetResource();
            resource.Type = 1;
            resource.RemoteName = remoteName;
            return WNetAddConnection2(resource, password, username, 0);
        }

        public static int Disconnect(string remoteName)
        {
            return WNetCancelConnection2(remoteName, 0, true);
        }
    }
}
'@
    Add-Type -TypeDefinition $source
}

function Invoke-PiNative {
    # Runs a system tool with fixed, non-secret arguments. Stderr is merged as text: in a
    # remote session Windows PowerShell turns native stderr into errors, fatal under 'Stop'.
    param([string]$FilePath, [string[]]$ArgumentList)
    $ErrorActionPreference = 'Continue'
    $lines = New-Object System.Collections.ArrayList
    & $FilePath @ArgumentList 2>&1 | ForEach-Object {
        [void]$lines.Add([string]$_)
    }
    return @{ exit_code = $LASTEXITCODE; output = (($lines -join ' ').Trim()) }
}

# ---------------------------------------------------------------- run_process

function ConvertTo-PiArgument {
    # One argv entry quoted by the CommandLineToArgvW / C runtime rules (ops.windows_argv_quote).
    param([string]$Argument)
    if ($Argument.Length -gt 0 -and $Argument.IndexOfAny([char[]]@(' ', "`t", "`n", [char]11, '"')) -lt 0) {
        return $Argument
    }
    $builder = New-Object System.Text.StringBuilder
    [void]$builder.Append('"')
    $backslashes = 0
    foreach ($ch in $Argument.ToCharArray()) {
        if ($ch -eq [char]'\') {
            $backslashes += 1
            continue
        }
        if ($ch -eq [char]'"') {
            [void]$builder.Append([char]'\', 2 * $backslashes + 1)
        } else {
            [void]$builder.Append([char]'\', $backslashes)
        }
        [void]$builder.Append($ch)
        $backslashes = 0
    }
    [void]$builder.Append([char]'\', 2 * $backslashes)
    [void]$builder.Append('"')
    return $builder.ToString()
}

function Join-PiArgumentList {
    param($Arguments)
    $quoted = New-Object System.Collections.ArrayList
    foreach ($argument in $Arguments) {
        [void]$quoted.Add((ConvertTo-PiArgument ([string]$argument)))
    }
    return ($quoted.ToArray() -join ' ')
}

function Stop-PiProcessTree {
    # Installers start children (msiexec): end the whole tree, then the process itself.
    param($Process)
    [void](Invoke-PiNative 'taskkill.exe' @('/PID', [string]$Process.Id, '/T', '/F'))
    try {
        if (-not $Process.HasExited) {
            $Process.Kill()
        }
    } catch {
        $null = $_
    }
}

function Invoke-PiRunProcess {
    param($OpArgs)
    $path = [string](Get-PiRequiredArg $OpArgs 'path')
    $arguments = @(Get-PiArg $OpArgs 'arguments' @())
    $workingDirectory = [string](Get-PiArg $OpArgs 'working_directory' '')
    $timeoutS = [int](Get-PiArg $OpArgs 'timeout_s' 3600)
    $tailLines = [int](Get-PiArg $OpArgs 'tail_lines' 20)
    if ([System.IO.Path]::IsPathRooted($path) -and -not [System.IO.File]::Exists($path)) {
        Stop-PiOp 'NotFound' ('no such executable: {0}' -f $path)
    }
    if ($workingDirectory -ne '' -and -not [System.IO.Directory]::Exists($workingDirectory)) {
        Stop-PiOp 'NotFound' ('no such working directory: {0}' -f $workingDirectory)
    }
    $argumentLine = Join-PiArgumentList $arguments
    $commandLine = '"' + $path + '"'
    if ($argumentLine -ne '') {
        $commandLine = $commandLine + ' ' + $argumentLine
    }
    Initialize-PiNative
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $path
    $info.Arguments = $argumentLine
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    if ($workingDirectory -ne '') {
        $info.WorkingDirectory = $workingDirectory
    }
    $process = New-Object System.Diagnostics.Process
    $process.StartInfo = $info
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        [void]$process.Start()
    } catch {
        $win32 = Find-PiException $_.Exception ([System.ComponentModel.Win32Exception])
        if ($null -ne $win32 -and ($win32.NativeErrorCode -eq 2 -or $win32.NativeErrorCode -eq 3)) {
            Stop-PiOp 'NotFound' ('cannot start {0}: {1}' -f $path, $win32.Message)
        }
        throw
    }
    try {
        # no input: a process that asks a question reads end-of-file instead of hanging
        $process.StandardInput.Close()
        $stdout = New-Object Pushinstall.TailReader -ArgumentList $process.StandardOutput, $tailLines
        $stderr = New-Object Pushinstall.TailReader -ArgumentList $process.StandardError, $tailLines
        $timedOut = $false
        if (-not $process.WaitForExit([int]([Math]::Min([double]$timeoutS * 1000, [double][int]::MaxValue)))) {
            $timedOut = $true
            Stop-PiProcessTree $process
            [void]$process.WaitForExit(30000)
        }
        # a grandchild that inherited the pipes may keep them open: do not wait for it forever
        [void]$stdout.Wait(10000)
        [void]$stderr.Wait(10000)
        $exitCode = $null
        if ($process.HasExited) {
            $exitCode = $process.ExitCode
        }
        $duration = [Math]::Round($watch.Elapsed.TotalSeconds, 3)
        return @{
            exit_code = $exitCode
            timed_out = $timedOut
            duration_s = $duration
            stdout_tail = $stdout.Tail()
            stderr_tail = $stderr.Tail()
            command_line = $commandLine
        }
    } finally {
        $process.Close()
    }
}

# ---------------------------------------------------------------- write_secret

function New-PiSecretAcl {
    # SYSTEM and BUILTIN\Administrators by SID (names differ by language), inheritance off.
    $acl = New-Object System.Security.AccessControl.FileSecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule -ArgumentList $identity, ([System.Security.AccessControl.FileSystemRights]::FullControl), ([System.Security.AccessControl.AccessControlType]::Allow)
        $acl.AddAccessRule($rule)
    }
    return $acl
}

function Test-PiSecretAcl {
    param([string]$Path)
    $acl = [System.IO.File]::GetAccessControl($Path)
    if (-not $acl.AreAccessRulesProtected) {
        return $false
    }
    $seen = @{}
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        $sid = $rule.IdentityReference.Value
        if ($sid -ne 'S-1-5-18' -and $sid -ne 'S-1-5-32-544') {
            return $false
        }
        $seen[$sid] = $true
    }
    return ($seen.Count -eq 2)
}

function Invoke-PiWriteSecret {
    # The file gets its ACL while still empty; only then is the content written.
    param($OpArgs)
    $path = [string](Get-PiRequiredArg $OpArgs 'path')
    $content = [string](Get-PiRequiredArg $OpArgs 'content')
    $bytes = (New-Object System.Text.UTF8Encoding -ArgumentList $false).GetBytes($content)
    $temp = New-PiTempPath $path
    try {
        [System.IO.File]::WriteAllBytes($temp, [byte[]]@())
        [System.IO.File]::SetAccessControl($temp, (New-PiSecretAcl))
        $stream = [System.IO.File]::Open($temp, [System.IO.FileMode]::Truncate, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
        try {
            $stream.Write($bytes, 0, $bytes.Length)
        } finally {
            $stream.Close()
        }
        $same = $false
        if ([System.IO.File]::Exists($path)) {
            $same = ((Get-PiSha256 $path) -eq (Get-PiSha256 $temp)) -and (Test-PiSecretAcl $path)
        }
        if ($same) {
            Remove-PiTemp $temp
        } else {
            Move-PiIntoPlace $temp $path
        }
    } catch {
        Remove-PiTemp $temp
        throw
    }
    return @{ changed = (-not $same) }
}

# ---------------------------------------------------------------- registry

function Open-PiRegistryKey {
    # A RegistryKey in the 64- or 32-bit view, or $null when the key does not exist.
    param([string]$Path, [string]$View = '64', [bool]$Writable = $false, [bool]$Create = $false)
    $match = [regex]::Match($Path, '^(?:Registry::)?(HKLM|HKEY_LOCAL_MACHINE|HKCU|HKEY_CURRENT_USER|HKU|HKEY_USERS|HKCR|HKEY_CLASSES_ROOT):?(?:\\(.*))?$', [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
    if (-not $match.Success) {
        Stop-PiOp 'InvalidArgument' ('registry key must start with HKLM:, HKCU:, HKU: or HKCR: ({0})' -f $Path)
    }
    $hives = @{
        'HKLM' = 'LocalMachine'; 'HKEY_LOCAL_MACHINE' = 'LocalMachine'
        'HKCU' = 'CurrentUser'; 'HKEY_CURRENT_USER' = 'CurrentUser'
        'HKU' = 'Users'; 'HKEY_USERS' = 'Users'
        'HKCR' = 'ClassesRoot'; 'HKEY_CLASSES_ROOT' = 'ClassesRoot'
    }
    $hive = [Microsoft.Win32.RegistryHive]$hives[$match.Groups[1].Value.ToUpperInvariant()]
    if ($View -eq '64') {
        $registryView = [Microsoft.Win32.RegistryView]::Registry64
    } elseif ($View -eq '32') {
        $registryView = [Microsoft.Win32.RegistryView]::Registry32
    } else {
        Stop-PiOp 'InvalidArgument' 'view must be "64" or "32"'
    }
    $subKey = $match.Groups[2].Value.Trim('\')
    $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey($hive, $registryView)
    if ($subKey -eq '') {
        return $base
    }
    try {
        if ($Create) {
            return $base.CreateSubKey($subKey)
        }
        return $base.OpenSubKey($subKey, $Writable)
    } finally {
        $base.Close()
    }
}

function Test-PiRegistryKey {
    param([string]$Path)
    $key = Open-PiRegistryKey $Path
    if ($null -eq $key) {
        return $false
    }
    $key.Close()
    return $true
}

function Get-PiRegistryValue {
    param([string]$Path, [string]$Name)
    $key = Open-PiRegistryKey $Path
    if ($null -eq $key) {
        return $null
    }
    try {
        return ,$key.GetValue($Name, $null)
    } finally {
        $key.Close()
    }
}

function ConvertFrom-PiRegistryValue {
    # Raw .NET registry data -> the fact's JSON form (docs/ops.md).
    param($Raw, [string]$Kind)
    if ($null -eq $Raw) {
        return $null
    }
    if ($Kind -eq 'DWord') {
        return [BitConverter]::ToUInt32([BitConverter]::GetBytes([int32]$Raw), 0)
    }
    if ($Kind -eq 'QWord') {
        return [BitConverter]::ToUInt64([BitConverter]::GetBytes([int64]$Raw), 0)
    }
    if ($Kind -eq 'Binary') {
        return [Convert]::ToBase64String([byte[]]$Raw)
    }
    if ($Kind -eq 'MultiString') {
        return ,([string[]]$Raw)
    }
    return [string]$Raw
}

function ConvertTo-PiRegistryData {
    # A JSON value -> the .NET data RegistryKey.SetValue takes for that kind.
    param($Value, [string]$Kind)
    if ($Kind -eq 'String' -or $Kind -eq 'ExpandString') {
        return [string]$Value
    }
    if ($Kind -eq 'DWord') {
        $number = [int64]$Value
        if ($number -lt -2147483648 -or $number -gt 4294967295) {
            Stop-PiOp 'InvalidArgument' 'a DWord value must fit in 32 bits'
        }
        return [BitConverter]::ToInt32([BitConverter]::GetBytes($number), 0)
    }
    if ($Kind -eq 'QWord') {
        if ([decimal]$Value -ge 0) {
            return [BitConverter]::ToInt64([BitConverter]::GetBytes([uint64]$Value), 0)
        }
        return [int64]$Value
    }
    if ($Kind -eq 'MultiString') {
        return ,([string[]]@($Value))
    }
    if ($Kind -eq 'Binary') {
        return ,([Convert]::FromBase64String([string]$Value))
    }
    Stop-PiOp 'InvalidArgument' 'type must be String, ExpandString, DWord, QWord, MultiString or Binary'
}

function Get-PiRegistryFact {
    param($Query)
    $keyPath = [string](Get-PiRequiredArg $Query 'key')
    $name = [string](Get-PiArg $Query 'name' '')
    $view = [string](Get-PiArg $Query 'view' '64')
    $fact = @{ key_exists = $false; exists = $false; value = $null; type = $null }
    $key = Open-PiRegistryKey $keyPath $view
    if ($null -eq $key) {
        return $fact
    }
    try {
        $fact['key_exists'] = $true
        if ($key.GetValueNames() -contains $name) {
            $kind = $key.GetValueKind($name).ToString()
            # ExpandString stays unexpanded: it is compared with what set_registry writes
            $raw = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            $fact['exists'] = $true
            $fact['type'] = $kind
            $fact['value'] = ConvertFrom-PiRegistryValue $raw $kind
        }
    } finally {
        $key.Close()
    }
    return $fact
}

function Invoke-PiSetRegistry {
    param($OpArgs)
    $keyPath = [string](Get-PiRequiredArg $OpArgs 'key')
    $name = [string](Get-PiRequiredArg $OpArgs 'name')
    $value = Get-PiRequiredArg $OpArgs 'value'
    $kind = [string](Get-PiRequiredArg $OpArgs 'type')
    $view = [string](Get-PiArg $OpArgs 'view' '64')
    $data = ConvertTo-PiRegistryData $value $kind
    $wanted = ConvertTo-PiJson (ConvertFrom-PiRegistryValue $data $kind)
    $key = Open-PiRegistryKey $keyPath $view $true $true
    try {
        if ($key.GetValueNames() -contains $name) {
            $currentKind = $key.GetValueKind($name).ToString()
            $raw = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            $current = ConvertTo-PiJson (ConvertFrom-PiRegistryValue $raw $currentKind)
            if ($currentKind -eq $kind -and $current -ceq $wanted) {
                return @{ changed = $false }
            }
        }
        $key.SetValue($name, $data, [Microsoft.Win32.RegistryValueKind]$kind)
    } finally {
        $key.Close()
    }
    return @{ changed = $true }
}

# ---------------------------------------------------------------- facts

function Get-PiFacts {
    param($OpArgs)
    $queries = @(Get-PiRequiredArg $OpArgs 'queries')
    $table = Get-PiFactTable
    # ids are compared exactly, as in Python: not a case-insensitive hashtable
    $result = New-Object 'System.Collections.Generic.Dictionary[string,object]'
    foreach ($query in $queries) {
        if (-not ($query -is [System.Collections.IDictionary])) {
            Stop-PiOp 'InvalidArgument' 'a fact query is a JSON object'
        }
        $id = [string](Get-PiRequiredArg $query 'id')
        try {
            $kind = [string](Get-PiRequiredArg $query 'kind')
            if (-not $table.ContainsKey($kind)) {
                Stop-PiOp 'InvalidArgument' ("unknown fact kind '{0}'" -f $kind)
            }
            $handler = $table[$kind]
            $result[$id] = & $handler $query
        } catch {
            $result[$id] = @{ error = (Get-PiErrorAnswer $_)['error'] }
        }
    }
    return ,$result
}

function Get-PiFileFact {
    param($Query)
    $path = [string](Get-PiRequiredArg $Query 'path')
    $withHash = [bool](Get-PiArg $Query 'hash' $true)
    if ([System.IO.Directory]::Exists($path)) {
        $directory = New-Object System.IO.DirectoryInfo -ArgumentList $path
        return @{ exists = $true; is_directory = $true; size = $null; sha256 = $null; modified = (Format-PiTime $directory.LastWriteTimeUtc) }
    }
    if ([System.IO.File]::Exists($path)) {
        $file = New-Object System.IO.FileInfo -ArgumentList $path
        $sha256 = $null
        if ($withHash) {
            $sha256 = Get-PiSha256 $path
        }
        return @{ exists = $true; is_directory = $false; size = $file.Length; sha256 = $sha256; modified = (Format-PiTime $file.LastWriteTimeUtc) }
    }
    return @{ exists = $false; is_directory = $false; size = $null; sha256 = $null; modified = $null }
}

function Find-PiService {
    # By service name, then by display name; exact (no wildcards), case-insensitive.
    param([string]$Name)
    Add-Type -AssemblyName System.ServiceProcess
    $services = [System.ServiceProcess.ServiceController]::GetServices()
    foreach ($service in $services) {
        if ($service.ServiceName -eq $Name) {
            return $service
        }
    }
    foreach ($service in $services) {
        if ($service.DisplayName -eq $Name) {
            return $service
        }
    }
    return $null
}

function Get-PiStartMode {
    # From the registry: ServiceController.StartType needs .NET 4.6.1.
    param([string]$ServiceName)
    $key = Open-PiRegistryKey ('HKLM:\SYSTEM\CurrentControlSet\Services\' + $ServiceName)
    if ($null -eq $key) {
        return $null
    }
    try {
        $start = $key.GetValue('Start', $null)
        $delayed = $key.GetValue('DelayedAutostart', 0)
    } finally {
        $key.Close()
    }
    if ($null -eq $start) {
        return $null
    }
    $modes = @{ 0 = 'Boot'; 1 = 'System'; 2 = 'Automatic'; 3 = 'Manual'; 4 = 'Disabled' }
    if ([int]$start -eq 2 -and [int]$delayed -eq 1) {
        return 'AutomaticDelayed'
    }
    return $modes[[int]$start]
}

function Get-PiServiceFact {
    param($Query)
    $name = [string](Get-PiRequiredArg $Query 'name')
    $service = Find-PiService $name
    if ($null -eq $service) {
        return @{ exists = $false; name = $null; display_name = $null; status = $null; start_mode = $null }
    }
    return @{
        exists = $true
        name = $service.ServiceName
        display_name = $service.DisplayName
        status = $service.Status.ToString()
        start_mode = (Get-PiStartMode $service.ServiceName)
    }
}

function Get-PiProductFact {
    # Uninstall entries in both registry views: 64-bit and WOW6432Node.
    param($Query)
    $productId = [string](Get-PiArg $Query 'product_id' '')
    $name = [string](Get-PiArg $Query 'name' '')
    if ($productId -eq '' -and $name -eq '') {
        Stop-PiOp 'InvalidArgument' 'a product query needs product_id or name'
    }
    foreach ($view in @('64', '32')) {
        $root = Open-PiRegistryKey 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall' $view
        if ($null -eq $root) {
            continue
        }
        try {
            foreach ($subName in $root.GetSubKeyNames()) {
                $entry = $root.OpenSubKey($subName)
                if ($null -eq $entry) {
                    continue
                }
                try {
                    $displayName = $entry.GetValue('DisplayName', $null)
                    $byId = ($productId -ne '' -and $subName -eq $productId)
                    $byName = ($name -ne '' -and $null -ne $displayName -and [string]$displayName -eq $name)
                    if ($byId -or $byName) {
                        return @{
                            installed = $true
                            product_id = $subName
                            name = $displayName
                            version = $entry.GetValue('DisplayVersion', $null)
                            install_location = $entry.GetValue('InstallLocation', $null)
                            view = $view
                        }
                    }
                } finally {
                    $entry.Close()
                }
            }
        } finally {
            $root.Close()
        }
    }
    return @{ installed = $false; product_id = $null; name = $null; version = $null; install_location = $null; view = $null }
}

function Test-PiNonEmptyValue {
    param($Value)
    if ($null -eq $Value) {
        return $false
    }
    foreach ($item in $Value) {
        if ([string]$item -ne '') {
            return $true
        }
    }
    return $false
}

function Get-PiPendingRebootFact {
    param($Query)
    $sessionManager = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager'
    $names = 'HKLM:\SYSTEM\CurrentControlSet\Control\ComputerName'
    $active = Get-PiRegistryValue ($names + '\ActiveComputerName') 'ComputerName'
    $next = Get-PiRegistryValue ($names + '\ComputerName') 'ComputerName'
    $signals = @{
        pending_file_rename = (Test-PiNonEmptyValue (Get-PiRegistryValue $sessionManager 'PendingFileRenameOperations'))
        pending_file_rename2 = (Test-PiNonEmptyValue (Get-PiRegistryValue $sessionManager 'PendingFileRenameOperations2'))
        component_based_servicing = (Test-PiRegistryKey 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending')
        windows_update = (Test-PiRegistryKey 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')
        computer_rename = ($null -ne $active -and $null -ne $next -and [string]$active -ne [string]$next)
    }
    $pending = $false
    foreach ($signal in $signals.Values) {
        if ($signal) {
            $pending = $true
        }
    }
    return @{ pending = $pending; signals = $signals }
}

function Get-PiBootTime {
    param($OperatingSystem)
    return Format-PiTime ([System.Management.ManagementDateTimeConverter]::ToDateTime($OperatingSystem.LastBootUpTime))
}

function Get-PiOsFact {
    param($Query)
    $os = Get-WmiObject -Class Win32_OperatingSystem
    return @{
        hostname = [Environment]::MachineName
        caption = ([string]$os.Caption).Trim()
        version = [string]$os.Version
        build = [int]$os.BuildNumber
        architecture = [string]$os.OSArchitecture
        powershell_version = $PSVersionTable.PSVersion.ToString()
        last_boot_time = (Get-PiBootTime $os)
    }
}

function Get-PiDiskFact {
    param($Query)
    $drive = [string](Get-PiRequiredArg $Query 'drive')
    $letter = $drive.TrimEnd('\').TrimEnd(':')
    if ($letter.Length -ne 1) {
        Stop-PiOp 'InvalidArgument' 'drive is a drive letter like "C:"'
    }
    foreach ($info in [System.IO.DriveInfo]::GetDrives()) {
        if ($info.Name -eq ($letter + ':\') -and $info.IsReady) {
            return @{ exists = $true; free_bytes = $info.AvailableFreeSpace; total_bytes = $info.TotalSize }
        }
    }
    return @{ exists = $false; free_bytes = $null; total_bytes = $null }
}

function Get-PiTcpFact {
    # TcpClient with a bounded wait: Test-NetConnection needs Windows 8.1 / PowerShell 4.
    param($Query)
    $target = [string](Get-PiRequiredArg $Query 'host')
    $port = [int](Get-PiRequiredArg $Query 'port')
    $timeoutMs = [int](Get-PiArg $Query 'timeout_ms' 3000)
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $pending = $client.BeginConnect($target, $port, $null, $null)
        if ($pending.AsyncWaitHandle.WaitOne($timeoutMs, $false)) {
            $client.EndConnect($pending)
            return @{ reachable = $true; elapsed_ms = [int]$watch.ElapsedMilliseconds; error = $null }
        }
        return @{ reachable = $false; elapsed_ms = [int]$watch.ElapsedMilliseconds; error = ('no answer within {0} ms' -f $timeoutMs) }
    } catch {
        return @{ reachable = $false; elapsed_ms = [int]$watch.ElapsedMilliseconds; error = (Get-PiInnermostMessage $_) }
    } finally {
        $client.Close()
    }
}

# ---------------------------------------------------------------- services, reboot, script

function Invoke-PiSetService {
    param($OpArgs)
    $name = [string](Get-PiRequiredArg $OpArgs 'name')
    $state = [string](Get-PiArg $OpArgs 'state' '')
    $startMode = [string](Get-PiArg $OpArgs 'start_mode' '')
    $timeoutS = [int](Get-PiArg $OpArgs 'timeout_s' 60)
    $scModes = @{ 'Automatic' = 'auto'; 'AutomaticDelayed' = 'delayed-auto'; 'Manual' = 'demand'; 'Disabled' = 'disabled' }
    if ($startMode -ne '' -and -not $scModes.ContainsKey($startMode)) {
        Stop-PiOp 'InvalidArgument' 'start_mode must be Automatic, AutomaticDelayed, Manual or Disabled'
    }
    if ($state -ne '' -and $state -ne 'running' -and $state -ne 'stopped') {
        Stop-PiOp 'InvalidArgument' 'state must be "running" or "stopped"'
    }
    $service = Find-PiService $name
    if ($null -eq $service) {
        Stop-PiOp 'NotFound' ('no such service: {0}' -f $name)
    }
    $serviceName = $service.ServiceName
    $changed = $false
    # the start mode first: a Disabled service cannot be started
    if ($startMode -ne '' -and (Get-PiStartMode $serviceName) -cne $startMode) {
        # sc.exe goes through the service control manager (ChangeServiceConfig2 for delayed
        # start); writing the registry alone would only count after a reboot
        $sc = Invoke-PiNative 'sc.exe' @('config', $serviceName, 'start=', $scModes[$startMode])
        if ($sc['exit_code'] -ne 0) {
            Stop-PiOp 'ServiceFailed' ('sc.exe config {0} failed ({1}): {2}' -f $serviceName, $sc['exit_code'], $sc['output'])
        }
        if ($startMode -eq 'Automatic' -and (Get-PiStartMode $serviceName) -eq 'AutomaticDelayed') {
            $key = Open-PiRegistryKey ('HKLM:\SYSTEM\CurrentControlSet\Services\' + $serviceName) '64' $true
            try {
                $key.SetValue('DelayedAutostart', 0, [Microsoft.Win32.RegistryValueKind]::DWord)
            } finally {
                $key.Close()
            }
        }
        $changed = $true
    }
    if ($state -ne '') {
        $target = [System.ServiceProcess.ServiceControllerStatus]::Stopped
        if ($state -eq 'running') {
            $target = [System.ServiceProcess.ServiceControllerStatus]::Running
        }
        $service.Refresh()
        if ($service.Status -ne $target) {
            try {
                if ($target -eq [System.ServiceProcess.ServiceControllerStatus]::Running) {
                    if ($service.Status -eq [System.ServiceProcess.ServiceControllerStatus]::Paused) {
                        $service.Continue()
                    } elseif ($service.Status -ne [System.ServiceProcess.ServiceControllerStatus]::StartPending) {
                        [void]$service.Start()
                    }
                } elseif ($service.Status -ne [System.ServiceProcess.ServiceControllerStatus]::StopPending) {
                    $service.Stop()
                }
                $service.WaitForStatus($target, [TimeSpan]::FromSeconds($timeoutS))
            } catch {
                $reason = Get-PiInnermostMessage $_
                $service.Refresh()
                Stop-PiOp 'ServiceFailed' ('{0} did not reach {1} within {2} s (status {3}): {4}' -f $serviceName, $target, $timeoutS, $service.Status, $reason)
            }
            $changed = $true
        }
    }
    $service.Refresh()
    return @{ changed = $changed; status = $service.Status.ToString(); start_mode = (Get-PiStartMode $serviceName) }
}

function Invoke-PiReboot {
    # Schedules the restart and answers at once; the caller waits for a new boot time.
    param($OpArgs)
    $delay = [int](Get-PiArg $OpArgs 'delay_s' 5)
    $reason = [string](Get-PiArg $OpArgs 'reason' 'pushinstall')
    # shutdown.exe sees the reason on its command line: keep it plain and short
    $reason = ($reason -replace '[^A-Za-z0-9 .,:;_()/-]', '_')
    if ($reason.Length -gt 200) {
        $reason = $reason.Substring(0, 200)
    }
    if ($reason.Trim() -eq '') {
        $reason = 'pushinstall'
    }
    $before = Get-PiBootTime (Get-WmiObject -Class Win32_OperatingSystem)
    $shutdown = Invoke-PiNative 'shutdown.exe' @('/r', '/f', '/t', [string]$delay, '/d', 'p:4:1', '/c', $reason)
    # 1190: a shutdown is already scheduled, which restarts the host all the same
    if ($shutdown['exit_code'] -ne 0 -and $shutdown['exit_code'] -ne 1190) {
        Stop-PiOp 'Exception' ('shutdown.exe failed ({0}): {1}' -f $shutdown['exit_code'], $shutdown['output'])
    }
    return @{ boot_time_before = $before }
}

function ConvertTo-PiText {
    param($Item)
    if ($Item -is [string]) {
        return $Item
    }
    return ($Item | Out-String).TrimEnd()
}

function Invoke-PiScript {
    # The documented escape hatch: the user's source is code by definition. Its parameters
    # are data, in the hashtable $Parameters (also passed as the first argument).
    param($OpArgs)
    $source = [string](Get-PiRequiredArg $OpArgs 'source')
    $given = Get-PiArg $OpArgs 'parameters' $null
    $Parameters = @{}
    if ($null -ne $given) {
        foreach ($key in @($given.Keys)) {
            $Parameters[$key] = $given[$key]
        }
    }
    $block = [scriptblock]::Create($source)
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
    return @{ output = $output.ToArray(); errors = $errors.ToArray(); success = ($errors.Count -eq 0) }
}
