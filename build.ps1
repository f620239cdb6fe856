#Requires -Version 7.4

<#
.SYNOPSIS
    Builds the OllamaContinuity module into out/OllamaContinuity, and optionally tests it, packages it or runs a tour.

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
    Packs the laid-out module into out/OllamaContinuity.<version>.nupkg with PSResourceGet's Compress-PSResource
    (PowerShell 7.4+), ready for Publish-PSResource / Install-PSResource from a file share or an internal feed:
        Register-PSResourceRepository -Name Internal -Uri \\server\psrepo -Trusted
        Publish-PSResource -NupkgPath ./out/OllamaContinuity.0.1.0.nupkg -Repository Internal
        Install-PSResource OllamaContinuity -Repository Internal
    It also packs the engine for .NET applications into out/OllamaContinuity.Engine.<version>.nupkg (dotnet pack of
    src/OllamaContinuity.Engine.AI): the failover engine and its Microsoft.Extensions.AI IChatClient in one NuGet
    package, with the module's version, deterministic (its timestamps are the last commit's, or SOURCE_DATE_EPOCH):
        dotnet nuget add source ./out --name OllamaContinuity
        dotnet add package OllamaContinuity.Engine

.PARAMETER Demo
    After building, runs a short tour of the module (tools/Demo.ps1) in a fresh pwsh: a healthy request, a cloud
    outage failing over, the circuit opening, contingency for one workflow and the request log read back. On a
    fresh machine it starts local STAND-IN cloud and Ollama servers (tests/FakeServer, on 127.0.0.1, stopped at the
    end, also on Ctrl+C); a reachable Ollama (OLLAMA_URL or http://localhost:11434) or CLOUD_API_KEY is used instead.
    Its state and request log go to a temporary folder that is removed at the end.

.EXAMPLE
    ./build.ps1
    Import-Module ./out/OllamaContinuity
    Invoke-AiRequest 'Summarise the benefits of local AI in 50 words.'

.EXAMPLE
    ./build.ps1 -Clean -Test

.EXAMPLE
    ./build.ps1 -Configuration Release -Package

.EXAMPLE
    dotnet tool restore; dotnet pwsh -NoProfile -File ./build.ps1 -Demo
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    [switch] $Clean,
    [switch] $Test,
    [switch] $SkipPester,
    [switch] $Package,
    [switch] $Demo
)
$PesterVersion = '5.9.1'

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$out = Join-Path $root 'out'
# Release lays the module out in out/OllamaContinuity, any other configuration in out/<Configuration>/OllamaContinuity.
$moduleDir = if ($Configuration -eq 'Release') { Join-Path $out 'OllamaContinuity' } else { Join-Path $out "$Configuration/OllamaContinuity" }

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

function Get-PesterModulePath {
    # Pester 5.9.1 comes from NuGet (a PackageDownload in tests/FakeServer), not from the PowerShell Gallery.
    $packages = $env:NUGET_PACKAGES
    if (-not $packages) {
        $line = & dotnet nuget locals global-packages --list 2>$null | Select-Object -First 1
        $packages = if ($line -match 'global-packages:\s*(.+)$') { $Matches[1].Trim() } else { Join-Path $HOME '.nuget/packages' }
    }
    Join-Path $packages "pester/$PesterVersion/tools/Pester.psd1"
}

if ($Test) {
    $summary = [ordered]@{ XunitPassed = 0; XunitFailed = 0; XunitSkipped = 0; XunitAssemblies = 0
        PesterRan = $false; PesterPassed = 0; PesterFailed = 0; PesterSkipped = 0 }

    Write-Host "Running the xunit suite (dotnet test, $Configuration)"
    # -m:1: the test projects share the fake servers' project and the module layout; building them in parallel races.
    & dotnet test (Join-Path $root 'OllamaContinuity.sln') --configuration $Configuration --nologo -m:1 2>&1 | ForEach-Object {
        $line = "$_"
        Write-Host $line
        # "Passed!  - Failed:     0, Passed:    44, Skipped:     0, Total:    44, ..." once per test assembly.
        if ($line -match '^(Passed|Failed)! +- Failed: *(\d+), Passed: *(\d+), Skipped: *(\d+)') {
            $summary.XunitAssemblies++
            $summary.XunitFailed += [int]$Matches[2]; $summary.XunitPassed += [int]$Matches[3]; $summary.XunitSkipped += [int]$Matches[4]
        }
    }
    $xunitFailed = $LASTEXITCODE -ne 0 -or $summary.XunitAssemblies -eq 0
    if ($xunitFailed -and $summary.XunitFailed -eq 0) { $summary.XunitFailed = 1 }

    $pesterFailed = $false
    if (-not $SkipPester) {
        & dotnet restore (Join-Path $root 'tests/FakeServer/OllamaContinuity.FakeServer.csproj') --nologo --verbosity quiet | Out-Null
        & dotnet build (Join-Path $root 'tests/FakeServer/OllamaContinuity.FakeServer.csproj') --configuration $Configuration --nologo --verbosity quiet | Out-Null
        $pester = Get-PesterModulePath
        if (-not (Test-Path $pester)) { throw "Pester $PesterVersion was not restored from NuGet (expected $pester)." }
        Write-Host "Running the Pester suite (Pester $PesterVersion, $(Join-Path $PSHOME 'pwsh') $($PSVersionTable.PSVersion))"
        $resultFile = Join-Path $out 'pester-summary.json'
        if (Test-Path $resultFile) { Remove-Item $resultFile -Force }
        # The tests run with PowerShell's default ErrorActionPreference (Continue), as at a user's prompt: a global
        # 'Stop' would turn every expected non-terminating error (AllBackendsFailed of a -ErrorAction-less call)
        # into a failure.
        $script = @"
Import-Module '$pester' -ErrorAction Stop
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $root 'tests/Pester')'
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.Output.RenderMode = '$(if ([Console]::IsOutputRedirected -or $env:CI) { 'Plaintext' } else { 'Auto' })'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputPath = '$(Join-Path $out 'pester-results.xml')'
`$r = Invoke-Pester -Configuration `$c
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount; Skipped = `$r.SkippedCount; Total = `$r.TotalCount } |
    ConvertTo-Json | Set-Content -LiteralPath '$resultFile'
"@
        # Pester runs in a fresh process: a binary module cannot be unloaded from this one. A pwsh run as a .NET tool
        # is the process 'dotnet', so the child is started from `$PSHOME, not from this process's path.
        & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script
        if (Test-Path $resultFile) {
            $r = Get-Content -Raw $resultFile | ConvertFrom-Json
            $summary.PesterRan = $r.Total -gt 0
            $summary.PesterPassed = $r.Passed; $summary.PesterFailed = $r.Failed; $summary.PesterSkipped = $r.Skipped
        }
        $pesterFailed = $LASTEXITCODE -ne 0 -or -not $summary.PesterRan -or $summary.PesterFailed -gt 0
        if ($pesterFailed -and $summary.PesterFailed -eq 0) { $summary.PesterFailed = 1 }
        if (-not $summary.PesterRan) { Write-Host 'Pester did not run or ran no test.' }
    }

    $summary | ConvertTo-Json | Set-Content -LiteralPath (Join-Path $out 'test-summary.json')
    Write-Host ("xunit: {0} passed, {1} failed, {2} skipped; Pester: {3}" -f $summary.XunitPassed, $summary.XunitFailed, $summary.XunitSkipped,
        $(if ($SkipPester) { 'not run (-SkipPester)' } else { '{0} passed, {1} failed, {2} skipped' -f $summary.PesterPassed, $summary.PesterFailed, $summary.PesterSkipped }))
    Write-Host ("{0} passed, {1} failed, {2} skipped" -f ($summary.XunitPassed + $summary.PesterPassed), ($summary.XunitFailed + $summary.PesterFailed), ($summary.XunitSkipped + $summary.PesterSkipped))
    if ($xunitFailed -or $pesterFailed) {
        Write-Error "Tests failed (xunit: $(-not $xunitFailed ? 'passed' : 'FAILED'), Pester: $(-not $pesterFailed ? ($SkipPester ? 'skipped' : 'passed') : 'FAILED'))." -ErrorAction Continue
        exit 1
    }
}

if ($Package) {
    # A .nupkg that PSResourceGet publishes and installs (Compress-PSResource validates the manifest first).
    Import-Module Microsoft.PowerShell.PSResourceGet -ErrorAction Stop
    $version = (Import-PowerShellDataFile (Join-Path $moduleDir 'OllamaContinuity.psd1')).ModuleVersion
    $nupkg = Join-Path $out "OllamaContinuity.$version.nupkg"
    if (Test-Path $nupkg) { Remove-Item $nupkg -Force }
    Compress-PSResource -Path $moduleDir -DestinationPath $out
    if (-not (Test-Path $nupkg)) { throw "Compress-PSResource did not write $nupkg." }
    Write-Host "Package: $nupkg"

    # The engine and its IChatClient for .NET applications: one NuGet package, OllamaContinuity.Engine, whose version
    # the project reads from the same manifest. Same sources, same bytes: the zip's timestamps are fixed.
    $enginePkg = Join-Path $out "OllamaContinuity.Engine.$version.nupkg"
    if (Test-Path $enginePkg) { Remove-Item $enginePkg -Force }
    $epoch = $env:SOURCE_DATE_EPOCH
    if (-not $epoch -and (Get-Command git -ErrorAction SilentlyContinue)) { $epoch = & git -C $root log -1 --format=%ct 2>$null }
    if (-not $epoch) { $epoch = ([DateTimeOffset](Get-Item (Join-Path $root 'src/OllamaContinuity/OllamaContinuity.psd1')).LastWriteTimeUtc).ToUnixTimeSeconds() }
    Invoke-Native dotnet @('pack', (Join-Path $root 'src/OllamaContinuity.Engine.AI/OllamaContinuity.Engine.AI.csproj'), '--configuration', $Configuration,
        '--nologo', '--output', $out, "-p:DeterministicTimestamp=$epoch")
    if (-not (Test-Path $enginePkg)) { throw "dotnet pack did not write $enginePkg (the package's version must be the module's, $version)." }
    Write-Host "Package: $enginePkg"
}

if ($Demo) {
    # The stand-in servers (tests/FakeServer); the tour runs in a fresh pwsh so that its environment variables and
    # the binary module never stay in the calling session.
    $fakeProject = Join-Path $root 'tests/FakeServer/OllamaContinuity.FakeServer.csproj'
    Write-Host 'Building the stand-in servers (tests/FakeServer)'
    Invoke-Native dotnet @('build', $fakeProject, '--configuration', $Configuration, '--nologo', '--verbosity', 'quiet')
    $fake = Get-ChildItem -Path (Join-Path $root "tests/FakeServer/bin/$Configuration") -Recurse -Filter 'OllamaContinuity.FakeServer.dll' |
        Sort-Object LastWriteTime -Descending | Select-Object -First 1 -ExpandProperty FullName
    & (Join-Path $PSHOME 'pwsh') -NoProfile -File (Join-Path $root 'tools/Demo.ps1') -ModulePath (Join-Path $moduleDir 'OllamaContinuity.psd1') -FakeServerPath $fake
    if ($LASTEXITCODE -ne 0) { throw "The tour failed (exit code $LASTEXITCODE)." }
}
