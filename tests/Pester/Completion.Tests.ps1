#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Tab completion as a user gets it (TabExpansion2): -OllamaModel from the configured Ollama's /api/tags (a stand-in
# Ollama listing chosen models), -Workflow from the contingency state and the request log.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

    function Get-Completion([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches | ForEach-Object CompletionText)
    }

    function Start-TaggedOllama([string[]] $Tags) {
        # tests/FakeServer with --tags: an Ollama stand-in whose /api/tags lists exactly these models.
        Start-FakeServer -Api Ollama | Stop-FakeServer   # builds the stand-in on demand
        $dll = Get-ChildItem -Path (Join-Path $repoRoot 'tests/FakeServer/bin') -Recurse -Filter 'OllamaContinuity.FakeServer.dll' |
            Sort-Object LastWriteTime -Descending | Select-Object -First 1 -ExpandProperty FullName
        $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @($dll, '--api', 'Ollama', '--name', 'tagged', '--tags', ($Tags -join ','))) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $process = [System.Diagnostics.Process]::Start($psi)
        $line = $process.StandardOutput.ReadLine()
        if ($line -notmatch '^LISTENING (\S+) (\S+)$') { $process.Kill(); throw "The stand-in did not start: $line" }
        [pscustomobject]@{ Process = $process; BaseUri = $Matches[1]; ChatUri = $Matches[2]; Name = 'tagged' }
    }

    $script:savedOllamaUrl = $env:OLLAMA_URL
}

AfterAll { $env:OLLAMA_URL = $savedOllamaUrl }

Describe '-OllamaModel completion' {
    BeforeAll {
        $script:ollama = Start-TaggedOllama -Tags 'llama3.1:8b', 'qwen2.5:14b', 'qwen2.5-coder:7b', 'mistral:latest'
    }
    AfterAll { $ollama | Stop-FakeServer }

    It 'offers the models the Ollama given by -OllamaUri has pulled, sorted' {
        Get-Completion "Invoke-AiRequest 'hi' -OllamaUri $($ollama.BaseUri) -OllamaModel " |
            Should -Be @('llama3.1:8b', 'mistral:latest', 'qwen2.5-coder:7b', 'qwen2.5:14b')
    }

    It 'filters by what was typed' {
        Get-Completion "Invoke-AiRequest 'hi' -OllamaUri $($ollama.BaseUri) -OllamaModel qw" | Should -Be @('qwen2.5-coder:7b', 'qwen2.5:14b')
    }

    It 'asks OLLAMA_URL when -OllamaUri is not typed (a chat URL works too), skipping a server that is down' {
        $env:OLLAMA_URL = 'http://127.0.0.1:9/, ' + $ollama.BaseUri.TrimEnd('/') + '/api/chat'
        Get-Completion "Invoke-AiRequest 'hi' -OllamaModel mis" | Should -Be @('mistral:latest')
    }

    It 'asks the servers at once: a first server that never answers does not use up the time of the second' {
        # A listener that accepts connections (the backlog completes them) and never answers a request.
        $silent = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $silent.Start()
        try {
            $env:OLLAMA_URL = "http://127.0.0.1:$($silent.LocalEndpoint.Port), $($ollama.BaseUri)"
            Get-Completion "Invoke-AiRequest 'hi' -OllamaModel ll" | Should -Be @('llama3.1:8b')
        }
        finally { $silent.Stop() }
    }

    It 'completes nothing (and does not hang) when no Ollama answers' {
        $env:OLLAMA_URL = 'http://127.0.0.1:9'
        Get-Completion "Invoke-AiRequest 'hi' -OllamaModel " | Should -BeNullOrEmpty
    }

    It 'is on Start-FailoverDrill too' {
        Get-Completion "Start-FailoverDrill -OllamaUri $($ollama.BaseUri) -OllamaModel ll" | Should -Be @('llama3.1:8b')
    }
}

Describe '-Workflow completion' {
    BeforeAll {
        $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
        $script:work = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-complete-" + [guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory -Path $work | Out-Null
        $env:OLLAMACONTINUITY_STATE_DIR = Join-Path $work 'state'
        $script:log = Join-Path $work 'requests.jsonl'
        @(
            '{"requestId":"1","timestamp":"2026-11-30T22:00:00Z","workflow":"ticket-triage","backend":"Cloud"}'
            '{"requestId":"2","timestamp":"2026-11-30T22:00:01Z","workflow":"month end close","backend":"Ollama"}'
            '{"requestId":"3","timestamp":"2026-11-30T22:00:02Z","workflow":null,"backend":"Cloud"}'
            '{"requestId":"4","timestamp":"2026-11-30T22:00:03Z","workf'
            '{"requestId":"5","timestamp":"2026-11-30T22:00:04Z","workflow":"ticket-triage","backend":"Ollama"}'
        ) | Set-Content -LiteralPath $log
        Enable-AiContingency -Workflow payroll -Scope User -Reason 'completion test' | Out-Null
        Enable-AiContingency -Workflow 'legal-*' -Scope User -Reason 'completion test' | Out-Null
    }
    AfterAll {
        Disable-AiContingency -Workflow payroll, 'legal-*' -Scope User -Confirm:$false -ErrorAction SilentlyContinue | Out-Null
        $env:OLLAMACONTINUITY_STATE_DIR = $savedStateDir
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }

    It 'offers the workflows of the request log and the contingency state, quoting names with spaces' {
        Get-Completion "Invoke-AiRequest 'hi' -LogPath $log -Workflow " | Should -Be @("'month end close'", 'payroll', 'ticket-triage')
    }

    It 'reads the log of OLLAMACONTINUITY_LOG_PATH when -LogPath is not typed, and filters by what was typed' {
        $saved = $env:OLLAMACONTINUITY_LOG_PATH
        try {
            $env:OLLAMACONTINUITY_LOG_PATH = $log
            Get-Completion "Invoke-AiRequest 'hi' -Workflow ti" | Should -Be @('ticket-triage')
            Get-Completion "Invoke-AiRequest 'hi' -Workflow 'mo" | Should -Be @("'month end close'")
        }
        finally { $env:OLLAMACONTINUITY_LOG_PATH = $saved }
    }

    It 'offers contingency patterns to the contingency cmdlets only' {
        Get-Completion 'Disable-AiContingency -Workflow le' | Should -Be @('legal-*')
        Get-Completion "Invoke-AiRequest 'hi' -LogPath $log -Workflow le" | Should -BeNullOrEmpty
    }

    It 'is on the -Workflow parameter of <Command>' -ForEach @(
        @{ Command = 'Invoke-AiRequest' }, @{ Command = 'Enable-AiContingency' }, @{ Command = 'Disable-AiContingency' }
        @{ Command = 'Get-AiContingency' }, @{ Command = 'Get-AiContingencyLog' }, @{ Command = 'Start-FailoverDrill' }
    ) {
        $attr = (Get-Command $Command).Parameters['Workflow'].Attributes | Where-Object { $_ -is [System.Management.Automation.ArgumentCompleterAttribute] }
        $attr.Type.FullName | Should -Be 'OllamaContinuity.Internal.WorkflowCompleter'
        Get-Completion "$Command -Workflow pay" | Should -Be @('payroll')
    }
}
