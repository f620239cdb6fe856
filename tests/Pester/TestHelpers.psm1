# Helpers for the Pester suite: the same fake cloud/Ollama servers as the xunit suite, as child processes on
# 127.0.0.1 (tests/FakeServer), built on demand.

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

function Get-WireFixturePath {
    <#
    .SYNOPSIS
        The path of a real provider recording in shared/wire-fixtures (kept beside the repository), or $null when absent.
    #>
    param([Parameter(Mandatory)] [string] $Name)
    $dir = if ($env:OLLAMACONTINUITY_WIRE_FIXTURES) { $env:OLLAMACONTINUITY_WIRE_FIXTURES } else { Join-Path $script:RepoRoot '../shared/wire-fixtures' }
    $path = Join-Path $dir $Name
    if (Test-Path -LiteralPath $path) { (Resolve-Path -LiteralPath $path).Path } else { $null }
}

function Get-ModuleManifestPath {
    Join-Path $script:RepoRoot 'out/OllamaContinuity/OllamaContinuity.psd1'
}

function Get-FakeServerDll {
    $bin = Join-Path $script:RepoRoot 'tests/FakeServer/bin'
    $dll = Get-ChildItem -Path $bin -Recurse -Filter 'OllamaContinuity.FakeServer.dll' -ErrorAction SilentlyContinue |
        Sort-Object LastWriteTime -Descending | Select-Object -First 1
    if (-not $dll) {
        & dotnet build (Join-Path $script:RepoRoot 'tests/FakeServer/OllamaContinuity.FakeServer.csproj') --nologo --verbosity quiet | Out-Null
        if ($LASTEXITCODE -ne 0) { throw 'Could not build tests/FakeServer.' }
        $dll = Get-ChildItem -Path $bin -Recurse -Filter 'OllamaContinuity.FakeServer.dll' | Sort-Object LastWriteTime -Descending | Select-Object -First 1
    }
    $dll.FullName
}

# The real Microsoft.PowerShell.SecretManagement 1.1.2, built from the vendored upstream source (tests/vendor, test
# only) on first use; returns its manifest. Its test extension vault is tests/Pester/TestVault/OcTestVault.
function Get-VendoredSecretManagement {
    $manifest = Join-Path $script:RepoRoot 'tests/vendor/SecretManagement/bin/Release/module/Microsoft.PowerShell.SecretManagement/Microsoft.PowerShell.SecretManagement.psd1'
    if (-not (Test-Path -LiteralPath $manifest)) {
        & dotnet build (Join-Path $script:RepoRoot 'tests/vendor/SecretManagement/SecretManagement.csproj') -c Release --nologo --verbosity quiet | Out-Null
        if ($LASTEXITCODE -ne 0) { throw 'Could not build tests/vendor/SecretManagement.' }
    }
    $manifest
}

function Start-FakeServer {
    <#
    .SYNOPSIS
        Starts a fake OpenAI, Anthropic or Ollama server on 127.0.0.1 with a fault: ok, blackhole, reset,
        malformed, stall, refusal, status:<code>, cut:N, stall:N, error:N (after N words), malformed-among:N,
        no-terminator, refusal-delta, reasoning:MS, endless-line, gzip-bomb, replay:FILE[:STATUS]. -Options adds
        more of the fake's options (--words N, --answer TEXT, --reject-assistant true).
    #>
    param(
        [Parameter(Mandatory)] [ValidateSet('OpenAI', 'Anthropic', 'Ollama')] [string] $Api,
        [string] $Name = $Api.ToLowerInvariant(),
        [string] $Fault = 'ok',
        [string[]] $Options = @()
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @((Get-FakeServerDll), '--api', $Api, '--name', $Name, '--fault', $Fault) + $Options) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.UseShellExecute = $false
    $process = [System.Diagnostics.Process]::Start($psi)
    $line = $process.StandardOutput.ReadLine()
    if ($line -notmatch '^LISTENING (\S+) (\S+)$') {
        $process.Kill()
        throw "The fake server did not start: $line"
    }
    [pscustomobject]@{ Process = $process; BaseUri = $Matches[1]; ChatUri = $Matches[2]; Name = $Name }
}

function Stop-FakeServer {
    param([Parameter(ValueFromPipeline)] $Server)
    process {
        if ($null -eq $Server) { return }
        try {
            $Server.Process.StandardInput.Close()
            if (-not $Server.Process.WaitForExit(3000)) { $Server.Process.Kill() }
        }
        catch { }
    }
}

function Get-FakeServerHits {
    param([Parameter(Mandatory)] $Server)
    (Invoke-RestMethod -Uri ($Server.BaseUri.TrimEnd('/') + '/__stats') -NoProxy).hits
}

function New-TestLogPath {
    Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-{0}/requests.jsonl" -f [guid]::NewGuid().ToString('n'))
}

function Start-FailoverFixture {
    <#
    .SYNOPSIS
        A fake cloud and a fake Ollama with the given faults, and the Invoke-AiRequest parameters that point at
        them (Common: splat it).
    #>
    param(
        [ValidateSet('OpenAI', 'Anthropic')] [string] $CloudApi = 'OpenAI',
        [string] $CloudFault = 'ok',
        [string] $OllamaFault = 'ok',
        [string[]] $CloudOptions = @(),
        [string[]] $OllamaOptions = @(),
        [Parameter(Mandatory)] [securestring] $ApiKey
    )
    $cloud = Start-FakeServer -Api $CloudApi -Name cloud -Fault $CloudFault -Options $CloudOptions
    $ollama = Start-FakeServer -Api Ollama -Name ollama -Fault $OllamaFault -Options $OllamaOptions
    $log = New-TestLogPath
    [pscustomobject]@{
        Cloud  = $cloud
        Ollama = $ollama
        Log    = $log
        Common = @{ CloudUri = $cloud.ChatUri; CloudApiKey = $ApiKey; OllamaUri = $ollama.BaseUri; LogPath = $log }
    }
}

function Stop-FailoverFixture {
    param([Parameter(ValueFromPipeline)] $Fixture)
    process { if ($Fixture) { $Fixture.Cloud, $Fixture.Ollama | Stop-FakeServer } }
}

Export-ModuleMember -Function Get-WireFixturePath, Get-ModuleManifestPath, Get-VendoredSecretManagement, Start-FakeServer, Stop-FakeServer, Get-FakeServerHits, New-TestLogPath, Start-FailoverFixture, Stop-FailoverFixture
