#Requires -Version 7.4

<#
.SYNOPSIS
    A five-minute tour of OllamaContinuity on any machine: a healthy request, a cloud outage failing over, the
    circuit opening, contingency for one workflow, and the request log read back.

.DESCRIPTION
    Run by './build.ps1 -Demo' (which builds the module and the stand-in servers first, then runs this script in a
    fresh pwsh). On a fresh machine there is no Ollama and no cloud key, so the tour starts local STAND-IN servers
    (tests/FakeServer) on 127.0.0.1: a stand-in cloud (OpenAI wire format) and a stand-in Ollama. They answer
    "<name>: reply to <prompt>" instead of a model's text, and every line that involves them says STAND-IN.

    With a real Ollama configured and reachable (OLLAMA_URL, or http://localhost:11434, answering /api/tags within
    2 s with at least one model) the tour uses it instead of the stand-in Ollama; with CLOUD_API_KEY set it uses the
    real cloud (CLOUD_API_URL, CLOUD_PROVIDER, CLOUD_MODEL as usual) for the healthy requests. The outage is always
    a stand-in: a local server answering HTTP 503, so a real provider is never harmed or billed for it.

    Nothing is left behind: the contingency state (OLLAMACONTINUITY_STATE_DIR) and the request log
    (OLLAMACONTINUITY_LOG_PATH) live in a temporary folder that is removed at the end, and the stand-in servers are
    stopped in a finally block, also on Ctrl+C (they also stop by themselves when this process ends).

.PARAMETER ModulePath
    The module to import. The default is out/OllamaContinuity (what './build.ps1' builds).

.PARAMETER FakeServerPath
    The stand-in server assembly (OllamaContinuity.FakeServer.dll). The default is the newest one under
    tests/FakeServer/bin.

.PARAMETER StandInsOnly
    Never use a real Ollama or cloud, even when configured (what the tests run).

.EXAMPLE
    ./build.ps1 -Demo

.EXAMPLE
    dotnet pwsh -NoProfile -File ./tools/Demo.ps1 -StandInsOnly
#>
[CmdletBinding()]
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/OllamaContinuity/OllamaContinuity.psd1'),
    [string] $FakeServerPath,
    [switch] $StandInsOnly
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path

function Write-Step([string] $Text) {
    Write-Host ''
    Write-Host "== $Text" -ForegroundColor Cyan
}

function Write-Note([string] $Text) { Write-Host "   $Text" -ForegroundColor DarkGray }

function Start-StandIn {
    # One stand-in server (tests/FakeServer) on 127.0.0.1; it prints "LISTENING <base> <chat>" and serves until its
    # standard input closes, so it also stops when this process dies.
    param([string] $Api, [string] $Name, [string] $Fault = 'ok')
    $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @($script:fakeServer, '--api', $Api, '--name', $Name, '--fault', $Fault)) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.UseShellExecute = $false
    $process = [System.Diagnostics.Process]::Start($psi)
    $script:standIns.Add($process)
    $line = $process.StandardOutput.ReadLine()
    if ($line -notmatch '^LISTENING (\S+) (\S+)$') { throw "The stand-in $Name did not start: $line" }
    [pscustomobject]@{ Name = $Name; BaseUri = $Matches[1]; ChatUri = $Matches[2]; Process = $process }
}

function Stop-StandIns {
    foreach ($p in $script:standIns) {
        try {
            if (-not $p.HasExited) {
                $p.StandardInput.Close()
                if (-not $p.WaitForExit(3000)) { $p.Kill() }
            }
        }
        catch { }
    }
    $script:standIns.Clear()
}

function Get-Hits($Server) { (Invoke-RestMethod -Uri ($Server.BaseUri.TrimEnd('/') + '/__stats') -NoProxy -TimeoutSec 5).hits }

function Find-RealOllama {
    # A real Ollama counts only if it answers /api/tags within 2 s and has a model to serve.
    $url = if ($env:OLLAMA_URL) { ($env:OLLAMA_URL -split '[,; ]+' | Where-Object { $_ } | Select-Object -First 1) } else { 'http://localhost:11434' }
    try {
        $tags = Invoke-RestMethod -Uri ($url.TrimEnd('/') + '/api/tags') -TimeoutSec 2 -NoProxy:($url -match '//(localhost|127\.|\[::1\])')
    }
    catch { return $null }
    $models = @($tags.models | ForEach-Object { $_.name })
    if ($models.Count -eq 0) { return $null }
    $model = if ($env:OLLAMA_MODEL -and $models -contains $env:OLLAMA_MODEL) { $env:OLLAMA_MODEL }
    elseif ($models -contains 'llama3.1:8b') { 'llama3.1:8b' } else { $models[0] }
    [pscustomobject]@{ Uri = $url; Model = $model }
}

$script:standIns = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
$temp = Join-Path ([System.IO.Path]::GetTempPath()) ("ollamacontinuity-demo-" + [guid]::NewGuid().ToString('n'))
$saved = @{}
foreach ($name in 'OLLAMACONTINUITY_STATE_DIR', 'OLLAMACONTINUITY_LOG_PATH', 'AI_CONTINGENCY_MODE', 'OLLAMACONTINUITY_ALERT_WEBHOOK') {
    $saved[$name] = [Environment]::GetEnvironmentVariable($name)
}

try {
    New-Item -ItemType Directory -Path $temp | Out-Null
    # Everything the tour writes goes to the temporary folder: contingency state and log, alert settings, request log.
    $env:OLLAMACONTINUITY_STATE_DIR = Join-Path $temp 'state'
    $env:OLLAMACONTINUITY_LOG_PATH = Join-Path $temp 'requests.jsonl'
    $env:AI_CONTINGENCY_MODE = $null
    $env:OLLAMACONTINUITY_ALERT_WEBHOOK = $null

    Import-Module $ModulePath -Force
    if (-not $FakeServerPath) {
        $FakeServerPath = Get-ChildItem -Path (Join-Path $root 'tests/FakeServer/bin') -Recurse -Filter 'OllamaContinuity.FakeServer.dll' -ErrorAction SilentlyContinue |
            Sort-Object LastWriteTime -Descending | Select-Object -First 1 -ExpandProperty FullName
    }
    if (-not $FakeServerPath -or -not (Test-Path $FakeServerPath)) {
        throw 'The stand-in servers are not built: run ./build.ps1 -Demo (or dotnet build tests/FakeServer -c Release).'
    }
    $script:fakeServer = (Resolve-Path $FakeServerPath).Path

    Write-Host 'OllamaContinuity tour: cloud first, local Ollama when the cloud fails.' -ForegroundColor White
    Write-Note "Temporary state and request log: $temp (removed at the end)"

    # Who plays the cloud and who plays Ollama.
    $realOllama = if ($StandInsOnly) { $null } else { Find-RealOllama }
    if ($realOllama) {
        $ollama = @{ OllamaUri = $realOllama.Uri; OllamaModel = $realOllama.Model }
        Write-Note "Ollama: REAL server at $($realOllama.Uri), model $($realOllama.Model)"
    }
    else {
        $ollamaStandIn = Start-StandIn -Api Ollama -Name 'stand-in-ollama'
        $ollama = @{ OllamaUri = $ollamaStandIn.BaseUri }
        Write-Note "Ollama: STAND-IN Ollama at $($ollamaStandIn.BaseUri) (a local fake on loopback, not a model; no Ollama was reachable$(if ($StandInsOnly) { ' or -StandInsOnly' }))"
    }

    $dummyKey = ConvertTo-SecureString 'sk-stand-in-not-a-real-key' -AsPlainText -Force
    if (-not $StandInsOnly -and $env:CLOUD_API_KEY) {
        $cloud = @{}   # Invoke-AiRequest reads CLOUD_API_KEY, CLOUD_API_URL, CLOUD_PROVIDER and CLOUD_MODEL itself.
        Write-Note "Cloud: REAL provider from CLOUD_API_KEY ($(if ($env:CLOUD_API_URL) { $env:CLOUD_API_URL } else { 'the default endpoint' }))"
    }
    else {
        $cloudStandIn = Start-StandIn -Api OpenAI -Name 'stand-in-cloud'
        $cloud = @{ CloudUri = $cloudStandIn.ChatUri; CloudApiKey = $dummyKey }
        Write-Note "Cloud: STAND-IN cloud at $($cloudStandIn.ChatUri) (a local fake speaking the OpenAI format; CLOUD_API_KEY is not set$(if ($StandInsOnly) { ' or -StandInsOnly' }))"
    }
    $outage = Start-StandIn -Api OpenAI -Name 'stand-in-outage' -Fault 'status:503'
    $down = @{ CloudUri = $outage.ChatUri; CloudApiKey = $dummyKey }
    Write-Note "Outage: STAND-IN cloud at $($outage.ChatUri) that answers HTTP 503 to every request"
    $view = 'Backend', 'FailoverReason', 'Workflow', 'LatencyMs', @{ Name = 'Text'; Expression = { $t = "$($_.Text)".Trim() -replace '\s+', ' '; if ($t.Length -gt 60) { $t.Substring(0, 57) + '...' } else { $t } } }

    Write-Step '1. A healthy cloud serves the request'
    Write-Note "Invoke-AiRequest 'Summarise the benefits of local AI in 50 words.' -Workflow marketing"
    Invoke-AiRequest 'Summarise the benefits of local AI in 50 words.' -Workflow marketing @cloud @ollama |
        Format-Table $view -AutoSize | Out-Host

    Write-Step '2. The cloud fails (HTTP 503): the same request goes to Ollama'
    Write-Note "Invoke-AiRequest 'Draft a status update for the VPN outage.' -Workflow ticket-triage -Verbose"
    Invoke-AiRequest 'Draft a status update for the VPN outage.' -Workflow ticket-triage @down @ollama -Verbose 4>&1 |
        ForEach-Object {
            if ($_ -is [System.Management.Automation.VerboseRecord]) { Write-Host "   VERBOSE: $($_.Message)" -ForegroundColor Yellow }
            else { $_ | Format-Table $view -AutoSize | Out-Host }
        }

    Write-Step '3. The outage goes on: after the third failure the circuit opens and the cloud is skipped'
    Write-Note "'ticket 2', 'ticket 3', 'ticket 4' | Invoke-AiRequest -Workflow ticket-triage"
    'ticket 2', 'ticket 3', 'ticket 4' | Invoke-AiRequest -Workflow ticket-triage @down @ollama |
        Format-Table $view -AutoSize | Out-Host
    $hits = Get-Hits $outage
    Write-Note "The outage stand-in saw $hits requests for 4 prompts: while the circuit is open no request waits on a dead cloud."
    Write-Note 'Get-AiContingency: the open circuit shows as Automatic contingency'
    Get-AiContingency | Where-Object Source -EQ 'Automatic' | Format-Table Source, Workflow, Active, Until, Reason -AutoSize | Out-Host

    Write-Step '4. Contingency for one workflow: payroll never leaves the building, marketing still uses the cloud'
    Write-Note "Enable-AiContingency -Workflow payroll -Scope User -Reason 'Payroll data stays on-premises'"
    Enable-AiContingency -Workflow payroll -Scope User -Reason 'Payroll data stays on-premises' | Format-Table -AutoSize | Out-Host
    'payroll', 'marketing' | ForEach-Object {
        Invoke-AiRequest "Explain this month's $_ figures." -Workflow $_ @cloud @ollama
    } | Format-Table $view -AutoSize | Out-Host
    Write-Note 'Get-AiContingencyLog: what ran locally while contingency was on'
    Get-AiContingencyLog | Select-Object -Last 3 | Format-Table -AutoSize | Out-Host
    Disable-AiContingency -Workflow payroll -Scope User -Confirm:$false | Out-Null
    Write-Note 'Disable-AiContingency -Workflow payroll: back to cloud first'

    Write-Step '5. The request log read back: every request, the backend that served it and why'
    if (Get-Command Get-AiRequestLog -Module OllamaContinuity -ErrorAction Ignore) {
        Write-Note 'Get-AiRequestLog | Group-Object Backend, FailoverReason'
        Get-AiRequestLog | Group-Object Backend, FailoverReason | Select-Object Count, Name | Format-Table -AutoSize | Out-Host
    }
    else {
        Write-Note "Get-Content `$env:OLLAMACONTINUITY_LOG_PATH | ConvertFrom-Json | Group-Object backend, failoverReason"
        Get-Content -LiteralPath $env:OLLAMACONTINUITY_LOG_PATH | ConvertFrom-Json |
            Group-Object backend, failoverReason | Select-Object Count, Name | Format-Table -AutoSize | Out-Host
    }

    Write-Host ''
    Write-Host 'Tour complete. Next: Get-Help about_OllamaContinuity, Get-Help Invoke-AiRequest -Examples, README.md.' -ForegroundColor Green
}
finally {
    Stop-StandIns
    Write-Note 'Stand-in servers stopped.'
    foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
    if (Test-Path -LiteralPath $temp) { Remove-Item -LiteralPath $temp -Recurse -Force -ErrorAction SilentlyContinue }
}
