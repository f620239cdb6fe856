#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:canary = 'sk-PESTER-CANARY-8c41f07d2e'
    $script:key = ConvertTo-SecureString -String $script:canary -AsPlainText -Force
}

Describe 'Invoke-AiRequest' {
    Context 'module surface' {
        It 'is exported by the module with its output type' {
            $cmd = Get-Command Invoke-AiRequest -Module OllamaContinuity
            $cmd.CommandType | Should -Be 'Cmdlet'
            $cmd.OutputType.Name | Should -Contain 'OllamaContinuity.Failover.AiResponse'
        }

        It 'takes prompts from the pipeline' {
            (Get-Command Invoke-AiRequest).Parameters['Prompt'].Attributes.ValueFromPipeline | Should -Contain $true
        }

        It 'has help with examples' {
            $help = Get-Help Invoke-AiRequest -Full
            $help.Synopsis | Should -Match 'fails over to local Ollama'
            @($help.examples.example).Count | Should -BeGreaterOrEqual 3
        }
    }

    Context 'a healthy cloud' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'ok' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'is served by the cloud' {
            $r = Invoke-AiRequest 'What is 2+2?' @common -Workflow reports
            $r.Backend | Should -Be 'Cloud'
            $r.Text | Should -Be 'cloud: reply to What is 2+2?'
            $r.FailoverReason | Should -BeNullOrEmpty
            $r.Workflow | Should -Be 'reports'
            Get-FakeServerHits $ollama | Should -Be 0
        }

        It '-WhatIf shows the route and sends nothing' {
            $before = Get-FakeServerHits $cloud
            $out = Invoke-AiRequest 'hello' @common -WhatIf
            $out | Should -BeNullOrEmpty
            Get-FakeServerHits $cloud | Should -Be $before
        }

        It 'writes one log line per request' {
            $lines = Get-Content $log | ConvertFrom-Json
            $lines.Count | Should -BeGreaterOrEqual 1
            $lines[0].backend | Should -Be 'Cloud'
            $lines[0].attempts[0].outcome | Should -Be 'Success'
        }
    }

    Context 'a failing cloud (<Fault>)' -ForEach @(
        @{ Fault = 'status:503'; Reason = 'ServerError' }
        @{ Fault = 'status:429'; Reason = 'RateLimited' }
        @{ Fault = 'status:529'; Reason = 'Overloaded' }
        @{ Fault = 'reset'; Reason = 'ConnectionReset' }
        @{ Fault = 'malformed'; Reason = 'MalformedResponse' }
    ) {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault $Fault -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'fails over to Ollama with reason <Reason> and the seed''s verbose line' {
            $verbose = $null
            $r = Invoke-AiRequest 'status report' @common -Verbose 4>&1 | Tee-Object -Variable verbose | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            $r.Backend | Should -Be 'Ollama'
            $r.FailoverReason | Should -Be $Reason
            $r.Text | Should -Be 'ollama: reply to status report'
            # ShouldProcess writes its own 'Performing the operation' line first; the seed's line follows it.
            ($verbose | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -match '^Cloud unavailable, falling back to Ollama' | Should -HaveCount 1
        }

        It 'works with -Debug in a non-interactive session (<Reason>): no prompt, the narrative on the debug stream' {
            # This suite runs under pwsh -NonInteractive, where any prompt throws.
            $all = Invoke-AiRequest 'status report' @common -Debug 5>&1
            ($all | Where-Object { $_ -isnot [System.Management.Automation.DebugRecord] }).Backend | Should -Be 'Ollama'
            ($all | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Message -match '^VERBOSE: Cloud unavailable, falling back to Ollama' | Should -HaveCount 1
        }
    }

    Context 'every backend down' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:502' -OllamaFault 'status:500' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'writes a non-terminating AllBackendsFailed error per prompt and goes on' {
            $errs = $null
            $out = 'a', 'b' | Invoke-AiRequest @common -ErrorVariable errs -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $errs.Count | Should -Be 2
            $errs[0].FullyQualifiedErrorId | Should -Be 'AllBackendsFailed,OllamaContinuity.Commands.InvokeAiRequestCommand'
            $errs[0].CategoryInfo.Category | Should -Be 'ConnectionError'
            $errs[0].ToString() | Should -Match 'Cloud .*ServerError'
            $errs[0].ToString() | Should -Match 'Ollama .*ServerError'
        }

        It 'stops with -ErrorAction Stop' {
            { Invoke-AiRequest 'x' @common -ErrorAction Stop } |
                Should -Throw -ErrorId 'AllBackendsFailed,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }
    }

    Context 'requests that must not fail over' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:400' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'reports a 400 as RequestRejected and never sends it to Ollama' {
            { Invoke-AiRequest 'bad request' @common -ErrorAction Stop } |
                Should -Throw -ErrorId 'RequestRejected,OllamaContinuity.Commands.InvokeAiRequestCommand'
            Get-FakeServerHits $ollama | Should -Be 0
        }
    }

    Context 'compliance approval' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:503' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'fails over without asking with -Force' {
            (Invoke-AiRequest 'x' @common -ConfirmFailover -Force).Backend | Should -Be 'Ollama'
        }

        It 'never fails over silently in a non-interactive session' {
            $manifest = Get-ModuleManifestPath
            $script = "Import-Module '$manifest'; `$k = ConvertTo-SecureString 'k-12345678' -AsPlainText -Force; " +
                "try { Invoke-AiRequest 'x' -CloudUri '$($cloud.ChatUri)' -CloudApiKey `$k -OllamaUri '$($ollama.BaseUri)' -ConfirmFailover -ErrorAction Stop; 'SERVED' } catch { `$_.FullyQualifiedErrorId }"
            $before = Get-FakeServerHits $ollama
            $result = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script
            $result | Should -Be 'FailoverNotApproved,OllamaContinuity.Commands.InvokeAiRequestCommand'
            Get-FakeServerHits $ollama | Should -Be $before
        }
    }

    Context 'reports' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:500' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
            $csv = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-{0}.csv" -f [guid]::NewGuid().ToString('n'))
        }
        AfterAll { $f | Stop-FailoverFixture; Remove-Item $csv -ErrorAction SilentlyContinue }

        It 'pipes into Export-Csv with useful columns' {
            'one', 'two' | Invoke-AiRequest @common -Workflow invoices | Export-Csv -Path $csv -NoTypeInformation
            $rows = Import-Csv $csv
            $rows.Count | Should -Be 2
            $rows[0].Backend | Should -Be 'Ollama'
            $rows[0].FailoverReason | Should -Be 'ServerError'
            $rows[0].Workflow | Should -Be 'invoices'
            # A one-off 500 is tried once more on the cloud first; this one stays.
            $rows[0].Route | Should -Match '^Cloud:ServerError/500\(\d+ms\) -> Cloud:ServerError/500\(\d+ms\) -> Ollama:Success\(\d+ms\)$'
        }

        It 'converts to JSON with names, not numbers' {
            $json = Invoke-AiRequest 'three' @common | ConvertTo-Json -Depth 4 | ConvertFrom-Json
            $json.Backend | Should -Be 'Ollama'
            # Three failures in a row (two requests, the first retried) opened the circuit: the cloud was skipped.
            $json.Attempts[0].FailureClass | Should -Be 'CircuitOpen'
            $json.Attempts[0].Outcome | Should -Be 'Skipped'
        }
    }

    Context 'secrets' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:401' -OllamaFault 'status:500' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'never shows the API key in any stream, error or log' {
            $all = Invoke-AiRequest 'x' @common -LogContent -Verbose -Debug *>&1 | Out-String -Width 4096
            $errors = $Error | Select-Object -First 5 | ForEach-Object { $_.ToString(); $_.Exception.ToString() }
            ($all + ($errors -join "`n") + (Get-Content $log -Raw)) | Should -Not -Match ([regex]::Escape($canary))
        }
    }

    Context 'retry before failover (<Fault>)' -ForEach @(
        @{ Fault = 'status:429@retry-after=2,ok'; Class = 'RateLimited'; MinSeconds = 1.9 }
        @{ Fault = 'status:503@retry-after=2,ok'; Class = 'ServerError'; MinSeconds = 1.9 }
        @{ Fault = 'status:500,ok'; Class = 'ServerError'; MinSeconds = 0 }
        @{ Fault = 'reset,ok'; Class = 'ConnectionReset'; MinSeconds = 0 }
    ) {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault $Fault -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'tries the cloud once more and the cloud serves it; Attempts shows both tries' {
            $sw = [System.Diagnostics.Stopwatch]::StartNew()
            $r = Invoke-AiRequest 'keep the better model' @common -CloudTimeoutSec 10
            $sw.Stop()
            $r.Backend | Should -Be 'Cloud'
            $r.FailoverReason | Should -BeNullOrEmpty
            $r.Attempts.Backend | Should -Be @('Cloud', 'Cloud')
            $r.Attempts[0].FailureClass | Should -Be $Class
            $r.Attempts[1].Outcome | Should -Be 'Success'
            $sw.Elapsed.TotalSeconds | Should -BeGreaterOrEqual $MinSeconds
            Get-FakeServerHits $cloud | Should -Be 2
            Get-FakeServerHits $ollama | Should -Be 0
            (Get-Content $log | Select-Object -Last 1 | ConvertFrom-Json).attempts.Count | Should -Be 2
        }
    }

    Context 'a Retry-After longer than -MaxRetryAfterSec' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:429@retry-after=2,ok' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'fails over at once and keeps the cloud skipped until it ends' {
            $sw = [System.Diagnostics.Stopwatch]::StartNew()
            $r = Invoke-AiRequest 'hurry' @common -MaxRetryAfterSec 1
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 1.5
            $r.Backend | Should -Be 'Ollama'
            $r.FailoverReason | Should -Be 'RateLimited'
            Get-FakeServerHits $cloud | Should -Be 1
            (Invoke-AiRequest 'again' @common).FailoverReason | Should -Be 'CoolingDown'
            $auto = Get-AiContingency -Source Automatic | Where-Object Endpoint -EQ ([uri]$cloud.ChatUri).GetLeftPart('Path')
            $auto.CircuitState | Should -Be 'CoolingDown'
        }
    }

    Context 'the breaker on a silent cloud, and its recovery' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'ok' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
            $common.CloudTimeoutSec = 1
            $endpoint = ([uri]$cloud.ChatUri).GetLeftPart('Path')
            $secret = 'board minutes, do not share'
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'after 15 healthy requests, a blackhole costs two timeouts, then the cloud is not asked' {
            1..15 | ForEach-Object { (Invoke-AiRequest "warm $_" @common).Backend | Should -Be 'Cloud' }
            Invoke-RestMethod -Uri ($cloud.BaseUri.TrimEnd('/') + '/__fault/blackhole') -NoProxy | Out-Null
            $before = Get-FakeServerHits $cloud
            $responses = 1..10 | ForEach-Object { Invoke-AiRequest $secret @common }
            $responses.FailoverReason[0..1] | Should -Be @('Timeout', 'Timeout')
            $responses.FailoverReason[2..9] | Should -Be (@('CircuitOpen') * 8)
            # The time lost to the dead cloud: two 1 s timeouts, not ten (the seed's client waits 10 s). The wall time
            # of the batch is asserted in the engine tests; here a busy CI machine adds the cmdlet's own overhead.
            $lost = ($responses.Attempts | Where-Object Backend -EQ 'Cloud' | Measure-Object LatencyMs -Sum).Sum / 1000
            $lost | Should -BeLessThan 2.5
            (Get-FakeServerHits $cloud) - $before | Should -BeLessOrEqual 3
        }

        It 'Get-AiContingency shows the open circuit, its last probe and the next one' {
            # A request sets the probe interval of its cloud: from now on every 0.5 s (each probe waits 1 s for its one token).
            $common.ProbeIntervalSec = 0.5
            (Invoke-AiRequest 'x' @common).FailoverReason | Should -Be 'CircuitOpen'
            $sw = [System.Diagnostics.Stopwatch]::StartNew()
            do {
                $auto = Get-AiContingency -Source Automatic | Where-Object Endpoint -EQ $endpoint
                Start-Sleep -Milliseconds 100
            } until ($auto.LastProbeResult -or $sw.Elapsed.TotalSeconds -gt 4)
            $auto.Active | Should -BeTrue
            $auto.CircuitState | Should -Be 'Open'
            $auto.Reason | Should -Match 'Timeout: 2 silent failures in a row'
            $auto.LastProbe | Should -Not -BeNullOrEmpty
            $auto.LastProbeResult | Should -Match 'Timeout'
            $auto.NextProbe | Should -BeOfType [DateTimeOffset]
            $auto | Out-String -Width 300 | Should -Match 'next probe \d\d:\d\d:\d\d'
        }

        It 'is back on the cloud within 3 s of its return, and no probe carried the prompt' {
            Invoke-RestMethod -Uri ($cloud.BaseUri.TrimEnd('/') + '/__fault/ok') -NoProxy | Out-Null
            $sw = [System.Diagnostics.Stopwatch]::StartNew()
            do {
                $r = Invoke-AiRequest $secret @common
                if ($r.Backend -ne 'Cloud') { Start-Sleep -Milliseconds 100 }
            } until ($r.Backend -eq 'Cloud' -or $sw.Elapsed.TotalSeconds -gt 5)
            $r.Backend | Should -Be 'Cloud'
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 3
            $bodies = Invoke-RestMethod -Uri ($cloud.BaseUri.TrimEnd('/') + '/__requests') -NoProxy
            $probes = @($bodies | Where-Object { $_ -match 'Reply with the single word OK' })
            $probes.Count | Should -BeGreaterOrEqual 1
            $probes | Should -Not -Match ([regex]::Escape($secret))
            ($probes[0] | ConvertFrom-Json).max_tokens | Should -Be 1
            # The user's prompt reached the cloud at most twice during the outage (the two timeouts), then once back.
            @($bodies | Where-Object { $_ -match [regex]::Escape($secret) }).Count | Should -BeLessOrEqual 3
            Get-AiContingency -Source Automatic | Where-Object Endpoint -EQ $endpoint | Should -BeNullOrEmpty
        }
    }

    Context 'input validation' {
        It 'rejects a bad cloud URI before sending anything' {
            { Invoke-AiRequest 'x' -CloudUri 'ftp://example.invalid/x' -CloudApiKey $key } |
                Should -Throw -ErrorId 'InvalidCloudUri,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }

        It 'rejects -MaxRetryAfterSec outside 0-60 and -ProbeIntervalSec outside 0.1-3600' {
            { Invoke-AiRequest 'x' -MaxRetryAfterSec 61 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
            { Invoke-AiRequest 'x' -MaxRetryAfterSec -1 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
            { Invoke-AiRequest 'x' -ProbeIntervalSec 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }

        It 'rejects an empty prompt' {
            { Invoke-AiRequest '' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }
    }
}
