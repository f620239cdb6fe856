#Requires -Version 7.4
<#
.SYNOPSIS
    Builds the OllamaContinuity module into out/OllamaContinuity, and optionally tests and packages it.

.DESCRIPTION
    The front door for developers and CI. It builds the solution with the .NET SDK, which lays the module out in
    out/OllamaContinuity (manifest, OllamaContinuity.dll, Dependencies/, Formats/, help), so that
    'Import-Module ./out/OllamaContinuity' works at once.

    -Test runs the xunit suite (dotnet test: failover core, cmdlets in an in-process PowerShell 7.6, firewalls in
    network namespaces when run as root on Linux) and then the Pester 5 suite in a fresh 'pwsh -NoProfile'
    (a binary module cannot be unloaded, so Pester never runs in the calling session).

.PARAMETER Configuration
    Debug or Release. The default is Release.

.PARAMETER Clean
    Removes out/ and the bin/obj folders first.

.PARAMETER Test
    Runs the xunit and Pester suites after building. Exits with a non-zero code when any test fails.

.PARAMETER SkipPester
    With -Test: runs only the xunit suite.

.PARAMETER Package
    Zips the laid-out module to out/OllamaContinuity-<version>.zip, ready for an internal repository or a file share.

.EXAMPLE
    ./build.ps1
    Import-Module ./out/OllamaContinuity
    Invoke-AiRequest 'Summarise the benefits of local AI in 50 words.'

.EXAMPLE
    ./build.ps1 -Clean -Test

.EXAMPLE
    ./build.ps1 -Configuration Release -Package
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    [switch] $Clean,
    [switch] $Test,
    [switch] $SkipPester,
    [switch] $Package
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$out = Join-Path $root 'out'
$moduleDir = Join-Path $out 'OllamaContinuity'

function Invoke-Native {
    param([string] $FilePath, [string[]] $ArgumentList)
    Write-Verbose "$FilePath $($ArgumentList -join ' ')"
    & $FilePath @ArgumentList
    if ($LASTEXITCODE -ne 0) { throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE." }
}

if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) {
    throw 'The .NET SDK (dotnet) is required: https://dot.net'
}

if ($Clean) {
    Write-Host 'Cleaning out/, bin/ and obj/'
    foreach ($dir in @($out) + @(Get-ChildItem -Path (Join-Path $root 'src'), (Join-Path $root 'tests'), (Join-Path $root 'bench') -Directory -Recurse -Include bin, obj -ErrorAction SilentlyContinue | ForEach-Object FullName)) {
        if (Test-Path $dir) { Remove-Item -Recurse -Force $dir }
    }
}

Write-Host "Building ($Configuration)"
# Building the cmdlet project lays the module out in out/OllamaContinuity (target LayOutModule).
Invoke-Native dotnet @('build', (Join-Path $root 'src/OllamaContinuity/OllamaContinuity.csproj'), '--configuration', $Configuration, '--nologo')
if (-not (Test-Path (Join-Path $moduleDir 'OllamaContinuity.psd1'))) { throw "The module was not laid out in $moduleDir." }
Write-Host "Module ready: Import-Module $moduleDir"

if ($Test) {
    Write-Host 'Running the xunit suite (dotnet test)'
    & dotnet test (Join-Path $root 'OllamaContinuity.sln') --configuration $Configuration --nologo
    $xunitFailed = $LASTEXITCODE -ne 0

    $pesterFailed = $false
    if (-not $SkipPester) {
        # Pester runs in a fresh process: a binary module cannot be unloaded from this one.
        $pester = Get-Module -ListAvailable Pester | Where-Object Version -GE ([version]'5.0') | Sort-Object Version -Descending | Select-Object -First 1
        if (-not $pester) {
            Write-Warning 'Pester 5 is not installed (Install-Module Pester -MinimumVersion 5.0 -Scope CurrentUser); the Pester suite was skipped.'
        }
        else {
            Write-Host "Running the Pester suite (Pester $($pester.Version))"
            $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module Pester -RequiredVersion $($pester.Version)
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $root 'tests/Pester')'
`$c.Run.Exit = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputPath = '$(Join-Path $out 'pester-results.xml')'
Invoke-Pester -Configuration `$c
"@
            & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script
            $pesterFailed = $LASTEXITCODE -ne 0
        }
    }

    if ($xunitFailed -or $pesterFailed) {
        throw "Tests failed (xunit: $(-not $xunitFailed ? 'passed' : 'FAILED'), Pester: $(-not $pesterFailed ? 'passed or skipped' : 'FAILED'))."
    }
}

if ($Package) {
    $version = (Import-PowerShellDataFile (Join-Path $moduleDir 'OllamaContinuity.psd1')).ModuleVersion
    $zip = Join-Path $out "OllamaContinuity-$version.zip"
    if (Test-Path $zip) { Remove-Item $zip -Force }
    Compress-Archive -Path $moduleDir -DestinationPath $zip
    Write-Host "Package: $zip"
}
