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

        It 'has the log line in the file when the cmdlet returns, even if the process is killed right after' {
            # The log is written (one write to the file, nothing buffered in the process) before the cmdlet returns:
            # a pwsh killed (SIGKILL on Unix) right after Invoke-AiRequest still leaves its line.
            $killLog = New-TestLogPath
            $script = "Import-Module '$(Get-ModuleManifestPath)'; " +
                "`$r = Invoke-AiRequest 'kill me' -CloudUri '$($cloud.ChatUri)' -OllamaUri '$($ollama.BaseUri)' -LogPath '$killLog' -Workflow killed-right-after; " +
                "[Console]::Out.WriteLine(`$r.RequestId); [Console]::Out.Flush(); Stop-Process -Id `$PID -Force"
            $env:CLOUD_API_KEY = $canary
            try {
                $out = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script
            }
            finally {
                Remove-Item Env:CLOUD_API_KEY
            }
            $id = @($out)[0]
            $id | Should -Not -BeNullOrEmpty
            $line = Get-Content $killLog | ConvertFrom-Json | Where-Object requestId -EQ $id
            $line.workflow | Should -Be 'killed-right-after'
            $line.backend | Should -Be 'Cloud'
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
            # -ErrorAction Continue: the error is part of what is checked, whatever the caller's preference (build.ps1 runs Pester with Stop).
            $all = Invoke-AiRequest 'x' @common -LogContent -Verbose -Debug -ErrorAction Continue *>&1 | Out-String -Width 4096
            $errors = $Error | Select-Object -First 5 | ForEach-Object { $_.ToString(); $_.Exception.ToString() }
            ($all + ($errors -join "`n") + (Get-Content $log -Raw)) | Should -Not -Match ([regex]::Escape($canary))
        }
    }

    Context 'a cloud stream that breaks after 40 of 60 words (<Fault>)' -ForEach @(
        @{ Fault = 'cut:40'; Reasons = @('StreamTruncated', 'ConnectionReset') }
        @{ Fault = 'stall:40'; Reasons = @('StallTimeout') }
        @{ Fault = 'error:40'; Reasons = @('StreamError') }
    ) {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault $Fault -CloudOptions '--words', '60' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
            $forty = ((1..40 | ForEach-Object { "w$_" }) -join ' ') + ' '
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'restarts the answer on Ollama by default and keeps the partial cloud text in Attempts' {
            $verbose = $null
            $r = Invoke-AiRequest 'status report' @common -Stream -FirstTokenTimeoutSec 2 -Verbose 4>&1 | Tee-Object -Variable verbose | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            $r.Backend | Should -Be 'Ollama'
            $r.Text | Should -Be 'ollama: reply to status report'
            $r.Attempts[0].PartialText | Should -Be $forty
            $r.Attempts[0].FailureClass | Should -BeIn $Reasons
            $r.FailoverReason | Should -Be $r.Attempts[0].FailureClass
            ($verbose | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -match 'restarts the answer' | Should -HaveCount 1
        }

        It '-StreamRescue Continue sends the partial text for Ollama to continue' {
            $before = Get-FakeServerHits $ollama
            $r = Invoke-AiRequest 'status report' @common -Stream -FirstTokenTimeoutSec 2 -StreamRescue Continue
            $r.Backend | Should -Be 'Ollama'
            $r.Text | Should -Be ($forty + 'ollama: reply to status report')
            Get-FakeServerHits $ollama | Should -Be ($before + 1)
        }

        It '-StreamRescue None keeps the old StreamInterrupted error with the partial text' {
            $errs = $null
            $out = Invoke-AiRequest 'status report' @common -Stream -FirstTokenTimeoutSec 2 -StreamRescue None -ErrorVariable errs -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $errs[0].FullyQualifiedErrorId | Should -Be 'StreamInterrupted,OllamaContinuity.Commands.InvokeAiRequestCommand'
            $errs[0].TargetObject | Should -Be $forty
        }
    }

    Context 'Continue against an Ollama that rejects a trailing assistant message' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'cut:40' -CloudOptions '--words', '60' -OllamaFault 'ok' -OllamaOptions '--reject-assistant', 'true' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'restarts cleanly on the same Ollama server within the same request' {
            $r = Invoke-AiRequest 'status report' @common -Stream -StreamRescue Continue
            $r.Backend | Should -Be 'Ollama'
            $r.Text | Should -Be 'ollama: reply to status report'
            @($r.Attempts).Count | Should -Be 3
            $r.Attempts[1].FailureClass | Should -Be 'BadRequest'
            $r.Attempts[2].Outcome | Should -Be 'Success'
        }
    }

    Context 'tolerant streams (<Fault>)' -ForEach @(
        @{ Fault = 'malformed-among:10'; BadEvents = 1 }
        @{ Fault = 'no-terminator'; BadEvents = 0 }
    ) {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault $Fault -CloudOptions '--words', '60' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'is served whole by the cloud, with its finish reason in the output and the log' {
            $r = Invoke-AiRequest 'x' @common -Stream
            $r.Backend | Should -Be 'Cloud'
            $r.Text | Should -Be ((1..60 | ForEach-Object { "w$_" }) -join ' ')
            $r.FinishReason | Should -Be 'stop'
            $r.Attempts[0].BadEvents | Should -Be $BadEvents
            (Get-Content $log | Select-Object -Last 1 | ConvertFrom-Json).finishReason | Should -Be 'stop'
            Get-FakeServerHits $ollama | Should -Be 0
            # The default view shows why the answer ended (a 'length' answer is truncated).
            $view = $r | Format-Table | Out-String -Width 200
            $view | Should -Match 'Finish'
            $view | Should -Match 'Cloud\s+\S+\s+\d+\s+stop'
        }
    }

    Context 'a streamed refusal' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'refusal-delta' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'is ContentPolicyRefusal and never goes to Ollama, as without -Stream' {
            { Invoke-AiRequest 'x' @common -Stream -ErrorAction Stop } |
                Should -Throw -ErrorId 'ContentPolicyRefusal,OllamaContinuity.Commands.InvokeAiRequestCommand'
            Get-FakeServerHits $ollama | Should -Be 0
        }
    }

    Context 'a model that reasons longer than the first-token timeout' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'reasoning:2500' -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'stays on the cloud; reasoning never enters Text and is kept only with -IncludeThinking' {
            $plain = Invoke-AiRequest 'x' @common -Stream -FirstTokenTimeoutSec 1.2
            $kept = Invoke-AiRequest 'x' @common -Stream -FirstTokenTimeoutSec 1.2 -IncludeThinking
            $plain.Backend, $kept.Backend | Should -Be 'Cloud', 'Cloud'
            $plain.Text | Should -Be 'cloud: reply to x'
            $plain.Thinking | Should -BeNullOrEmpty
            $kept.Thinking | Should -Match '^ thinking thinking'
            Get-FakeServerHits $ollama | Should -Be 0
        }
    }

    Context 'Ollama servers without the model' {
        BeforeAll {
            $fixture = Get-WireFixturePath 'ol_404_model_not_found.json'
            $missingFault = if ($fixture) { "replay:${fixture}:404" } else { 'status:404' }
            $f = Start-FailoverFixture -CloudFault 'status:503' -OllamaFault $missingFault -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
            $second = Start-FakeServer -Api Ollama -Name ollama-b
            $third = Start-FakeServer -Api Ollama -Name ollama-c -Fault $missingFault
        }
        AfterAll { $f | Stop-FailoverFixture; $second, $third | Stop-FakeServer }

        It 'moves on to the next Ollama server when the first answers 404' {
            $r = Invoke-AiRequest 'x' @common -OllamaUri $ollama.BaseUri, $second.BaseUri
            $r.Text | Should -Be 'ollama-b: reply to x'
            # The cloud's one-off 503 is retried once before the failover.
            $r.Attempts.FailureClass | Should -Be @('ServerError', 'ServerError', 'NotFound', '')
        }

        It 'is ModelNotFound naming each server and the pull when none has it' {
            $errs = $null
            Invoke-AiRequest 'x' @common -OllamaUri $ollama.BaseUri, $third.BaseUri -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs[0].FullyQualifiedErrorId | Should -Be 'ModelNotFound,OllamaContinuity.Commands.InvokeAiRequestCommand'
            $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $errs[0].ToString() | Should -Match 'ollama pull llama3\.1:8b'
            $errs[0].ToString() | Should -Match ([regex]::Escape(([uri]$third.BaseUri).Authority))
        }
    }

    Context 'an Anthropic account out of credit' {
        BeforeAll {
            $fixture = Get-WireFixturePath 'an_400_credit_balance_too_low.json'
            $fault = if ($fixture) { "replay:${fixture}:400" } else { 'ok' }
            $f = Start-FailoverFixture -CloudApi Anthropic -CloudFault $fault -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'fails over as QuotaExhausted with a warning' -Skip:(-not (Test-Path (Join-Path $PSScriptRoot '../../../shared/wire-fixtures/an_400_credit_balance_too_low.json'))) {
            $warnings = $null
            $r = Invoke-AiRequest 'x' @common -CloudProvider Anthropic -WarningVariable warnings -WarningAction SilentlyContinue
            $r.Backend | Should -Be 'Ollama'
            $r.FailoverReason | Should -Be 'QuotaExhausted'
            $warnings.Count | Should -Be 1
        }
    }

    Context 'a hostile cloud stream (<Fault>)' -ForEach @(
        @{ Fault = 'endless-line'; Bound = 'MaxLineBytes' }
        @{ Fault = 'gzip-bomb'; Bound = 'MaxDecompressionRatio' }
    ) {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault $Fault -OllamaFault 'ok' -ApiKey $key
            $cloud, $ollama, $log, $common = $f.Cloud, $f.Ollama, $f.Log, $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'fails over naming the bound <Bound>' {
            $r = Invoke-AiRequest 'x' @common -Stream
            $r.Backend | Should -Be 'Ollama'
            $r.FailoverReason | Should -Be 'ResponseTooLarge'
            $r.Attempts[0].Detail | Should -Match $Bound
        }

        It '-MaxResponseBytes bounds a whole answer too' {
            $r = Invoke-AiRequest ('y' * 100) @common -MaxResponseBytes 1024 -OllamaUri $ollama.BaseUri -CloudUri $cloud.ChatUri
            $r.Backend | Should -Be 'Ollama'
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

    Context 'a relative -LogPath' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $common = $f.Common.Clone()
            $common.LogPath = './logs/requests.jsonl'
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'is relative to the PowerShell location (Set-Location), not to the process directory' {
            Push-Location $TestDrive
            try { (Invoke-AiRequest 'where is my log' @common).Backend | Should -Be 'Cloud' }
            finally { Pop-Location }
            Join-Path $TestDrive 'logs/requests.jsonl' | Should -Exist
        }

        It 'resolves a PowerShell drive path (TestDrive:) and takes a full path as it is' {
            $drive = $f.Common.Clone(); $drive.LogPath = 'TestDrive:/drive/requests.jsonl'
            (Invoke-AiRequest 'on a drive' @drive).Backend | Should -Be 'Cloud'
            Join-Path $TestDrive 'drive/requests.jsonl' | Should -Exist
            $full = $f.Common.Clone(); $full.LogPath = Join-Path $TestDrive 'full/requests.jsonl'
            Push-Location ([IO.Path]::GetTempPath())
            try { (Invoke-AiRequest 'full path' @full).Backend | Should -Be 'Cloud' }
            finally { Pop-Location }
            $full.LogPath | Should -Exist
            (Get-Content $full.LogPath | ConvertFrom-Json).backend | Should -Be 'Cloud'
        }
    }

    Context 'input validation' {
        It 'rejects a bad cloud URI before sending anything' {
            { Invoke-AiRequest 'x' -CloudUri 'ftp://example.invalid/x' -CloudApiKey $key } |
                Should -Throw -ErrorId 'InvalidCloudUri,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }

        It 'rejects an unknown -StreamRescue and a -MaxResponseBytes below 1 KiB' {
            { Invoke-AiRequest 'x' -StreamRescue Resume } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
            { Invoke-AiRequest 'x' -MaxResponseBytes 10 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.InvokeAiRequestCommand'
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

    Context 'the cloud API key is checked before anything is sent' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $cloud, $ollama, $common = $f.Cloud, $f.Ollama, $f.Common
            $plain = @{ CloudUri = $cloud.ChatUri; OllamaUri = $ollama.BaseUri; LogPath = $f.Log }
        }
        AfterEach { $env:CLOUD_API_KEY = $null }
        AfterAll { $f | Stop-FailoverFixture }

        It '-CloudApiKey $null (a failed Get-Secret) is an error, not a silent Ollama-only run' {
            $before = Get-FakeServerHits $ollama
            { Invoke-AiRequest 'q' @plain -CloudApiKey $null -ErrorAction Stop } |
                Should -Throw -ErrorId 'InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand'
            { Invoke-AiRequest 'q' @plain -CloudApiKey ([securestring]::new()) -ErrorAction Stop } |
                Should -Throw -ErrorId 'InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand'
            Get-FakeServerHits $ollama | Should -Be $before
        }

        It 'a key read with Get-Content -Raw (trailing newline) is trimmed and the cloud answers' {
            $keyFile = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-key-{0}.txt" -f [guid]::NewGuid().ToString('n'))
            Set-Content -Path $keyFile -Value $canary
            try {
                $raw = ConvertTo-SecureString -String (Get-Content -Raw $keyFile) -AsPlainText -Force
                (Invoke-AiRequest 'q' @plain -CloudApiKey $raw).Backend | Should -Be 'Cloud'
            }
            finally { Remove-Item $keyFile }
        }

        It 'a key with <Name> is refused with InvalidCloudApiKey and no byte reaches the socket' -ForEach @(
            @{ Name = 'CR/LF'; Value = "sk-abc`r`nGET /smuggled HTTP/1.1`r`nHost: x" }
            @{ Name = 'a non-ASCII character'; Value = "sk-t$([char]0xE9)st" }
        ) {
            $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
            $listener.Start()
            try {
                $uri = "http://127.0.0.1:$($listener.LocalEndpoint.Port)/v1/chat/completions"
                $bad = ConvertTo-SecureString -String $Value -AsPlainText -Force
                { Invoke-AiRequest 'q' -CloudUri $uri -CloudApiKey $bad -OllamaUri $ollama.BaseUri -LogPath $f.Log -ErrorAction Stop } |
                    Should -Throw -ErrorId 'InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand'
                $env:CLOUD_API_KEY = $Value
                { Invoke-AiRequest 'q' -CloudUri $uri -OllamaUri $ollama.BaseUri -LogPath $f.Log -ErrorAction Stop } |
                    Should -Throw -ErrorId 'InvalidCloudApiKey,OllamaContinuity.Commands.InvokeAiRequestCommand'
                Start-Sleep -Milliseconds 200
                $listener.Pending() | Should -BeFalse
            }
            finally { $listener.Stop() }
        }
    }
}
