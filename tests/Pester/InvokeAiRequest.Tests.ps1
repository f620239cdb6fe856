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
            $rows[0].Route | Should -Match '^Cloud:ServerError/500\(\d+ms\) -> Ollama:Success\(\d+ms\)$'
        }

        It 'converts to JSON with names, not numbers' {
            $json = Invoke-AiRequest 'three' @common | ConvertTo-Json -Depth 4 | ConvertFrom-Json
            $json.Backend | Should -Be 'Ollama'
            $json.Attempts[0].FailureClass | Should -Be 'ServerError'
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

    Context 'input validation' {
        It 'rejects a bad cloud URI before sending anything' {
            { Invoke-AiRequest 'x' -CloudUri 'ftp://example.invalid/x' -CloudApiKey $key } |
                Should -Throw -ErrorId 'InvalidCloudUri,OllamaContinuity.Commands.InvokeAiRequestCommand'
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
