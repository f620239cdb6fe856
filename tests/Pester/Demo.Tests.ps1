#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# README command 1 is './build.ps1 -Demo': it builds, then runs tools/Demo.ps1 in a fresh pwsh. These tests run
# the tour script the same way (the build already happened), with the stand-ins and with a "real" Ollama.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:demo = Join-Path $repoRoot 'tools/Demo.ps1'
    $script:manifest = Join-Path $repoRoot 'out/OllamaContinuity/OllamaContinuity.psd1'
    # The stand-in servers, built on demand by the helpers (the first Start-FakeServer builds them).
    Start-FakeServer -Api Ollama | Stop-FakeServer
    $script:fake = Get-ChildItem -Path (Join-Path $repoRoot 'tests/FakeServer/bin') -Recurse -Filter 'OllamaContinuity.FakeServer.dll' |
        Sort-Object LastWriteTime -Descending | Select-Object -First 1 -ExpandProperty FullName

    function Invoke-Tour {
        param([string[]] $Arguments = @(), [hashtable] $Environment = @{})
        # A child pwsh, as build.ps1 -Demo starts it; no cloud key and no Ollama unless the test gives one.
        $script = "`$env:CLOUD_API_KEY = `$null; `$env:OLLAMA_URL = '$($Environment.OLLAMA_URL)'; " +
            "& '$demo' -ModulePath '$manifest' -FakeServerPath '$fake' $($Arguments -join ' '); exit `$LASTEXITCODE"
        $lines = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script 2>&1 | ForEach-Object { "$_" -replace '\x1b\[[0-9;]*m', '' }
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = $lines; Text = $lines -join "`n" }
    }
}

Describe 'build.ps1 -Demo' {
    It 'is a documented switch of build.ps1 that runs tools/Demo.ps1' {
        $help = Get-Help (Join-Path $repoRoot 'build.ps1') -Parameter Demo
        ($help.description | Out-String) | Should -Match 'STAND-IN'
        (Get-Content -Raw (Join-Path $repoRoot 'build.ps1')) | Should -Match "tools/Demo\.ps1"
    }

    It 'README command 1 is the demo' {
        (Get-Content -Raw (Join-Path $repoRoot 'README.md')) | Should -Match ([regex]::Escape('dotnet tool restore && dotnet pwsh -NoProfile -File ./build.ps1 -Demo'))
    }
}

Describe 'The tour on a fresh machine (stand-ins only)' {
    BeforeAll { $script:run = Invoke-Tour -Arguments '-StandInsOnly' }

    It 'ends without error' {
        $run.ExitCode | Should -Be 0 -Because $run.Text
        $run.Text | Should -Match 'Tour complete'
        $run.Text | Should -Not -Match 'Exception|AllBackendsFailed'
    }

    It 'labels every stand-in server as a stand-in on loopback' {
        foreach ($role in 'Ollama', 'Cloud', 'Outage') {
            $line = $run.Lines | Where-Object { $_ -match "^\s*${role}: " }
            $line | Should -Match 'STAND-IN' -Because "the $role line is '$line'"
            $line | Should -Match 'http://127\.0\.0\.1:\d+/'
        }
    }

    It 'shows a healthy request, a failover, the circuit opening, contingency and the log read back' {
        $run.Text | Should -Match '(?m)^Cloud\s+marketing'
        $run.Text | Should -Match 'Cloud unavailable, falling back to Ollama \(ServerError'
        $run.Text | Should -Match '(?m)^Ollama\s+CircuitOpen\s+ticket-triage'
        $run.Text | Should -Match 'The outage stand-in saw 3 requests for 4 prompts'
        $run.Text | Should -Match '(?m)^Ollama\s+Contingency\s+payroll'
        # The first failing request retries the cloud once (a one-off 5xx), so the third failure is the second request's:
        # two requests fail over as ServerError, then the open circuit serves the other two from Ollama at once.
        $run.Text | Should -Match '(?m)^\s+2 Ollama, CircuitOpen'
        $run.Text | Should -Match '(?m)^\s+2 Ollama, ServerError'
    }

    It 'stops the stand-ins and leaves no state or log behind' {
        $run.Text | Should -Match 'Stand-in servers stopped'
        $temp = [regex]::Match($run.Text, 'Temporary state and request log: (\S+)').Groups[1].Value
        $temp | Should -Not -BeNullOrEmpty
        $temp | Should -Not -Exist
        foreach ($uri in [regex]::Matches($run.Text, 'STAND-IN [^\n]*? at (http://127\.0\.0\.1:\d+/)') | ForEach-Object { $_.Groups[1].Value }) {
            { Invoke-RestMethod -Uri ($uri + '__stats') -TimeoutSec 2 -NoProxy } | Should -Throw -Because "$uri should be stopped"
        }
    }
}

Describe 'The tour with a real Ollama configured' {
    BeforeAll {
        # A reachable server that answers /api/tags plays the configured Ollama (OLLAMA_URL).
        $script:ollama = Start-FakeServer -Api Ollama -Name configured-ollama
        $null = Invoke-RestMethod -Uri ($ollama.BaseUri + 'api/tags') -NoProxy -TimeoutSec 10   # warm it up: the tour allows 2 s
        $script:run = Invoke-Tour -Environment @{ OLLAMA_URL = $ollama.BaseUri }
    }
    AfterAll { $ollama | Stop-FakeServer }

    It 'uses the configured Ollama instead of a stand-in Ollama' {
        $run.ExitCode | Should -Be 0 -Because $run.Text
        ($run.Lines | Where-Object { $_ -match '^\s*Ollama: ' }) | Should -Match ([regex]::Escape("REAL server at $($ollama.BaseUri)"))
        $run.Text | Should -Match 'configured-ollama: reply to'
        Get-FakeServerHits $ollama | Should -BeGreaterOrEqual 5
    }
}
