#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-state-{0}" -f [guid]::NewGuid().ToString('n'))
    $env:OLLAMACONTINUITY_STATE_DIR = $script:stateDir
    $script:key = ConvertTo-SecureString -String 'sk-PESTER-CONTINGENCY-51d0c2' -AsPlainText -Force
}

AfterAll {
    Disable-AiContingency -Scope User -Confirm:$false | Out-Null
    Disable-AiContingency -Scope Process -Confirm:$false | Out-Null
    $env:OLLAMACONTINUITY_STATE_DIR = $script:savedStateDir
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Contingency cmdlets' {
    Context 'module surface' {
        It '<_> is exported with help and examples' -ForEach 'Enable-AiContingency', 'Disable-AiContingency', 'Get-AiContingency', 'Get-AiContingencyLog', 'Set-AiContinuityAlert', 'Get-AiContinuityAlert' {
            $cmd = Get-Command $_ -Module OllamaContinuity
            $cmd.CommandType | Should -Be 'Cmdlet'
            $help = Get-Help $_ -Full
            $help.Synopsis | Should -Not -BeNullOrEmpty
            @($help.examples.example).Count | Should -BeGreaterOrEqual 3
        }

        It 'Enable and Disable support -WhatIf and -Confirm' {
            foreach ($name in 'Enable-AiContingency', 'Disable-AiContingency', 'Set-AiContinuityAlert') {
                (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf'
                (Get-Command $name).Parameters.Keys | Should -Contain 'Confirm'
            }
        }

        It '-Scope accepts Process, User and Machine only' {
            ((Get-Command Enable-AiContingency).Parameters['Scope'].Attributes.ValidValues -join ',') | Should -Be 'Process,User,Machine'
        }
    }

    Context 'selective contingency with fake servers' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $cloud, $ollama, $common = $f.Cloud, $f.Ollama, $f.Common
        }
        AfterAll {
            Disable-AiContingency -Confirm:$false | Out-Null
            $f | Stop-FailoverFixture
        }

        It '-WhatIf changes nothing' {
            Enable-AiContingency -Workflow legal -WhatIf | Should -BeNullOrEmpty
            Join-Path $stateDir 'User/contingency.json' | Should -Not -Exist
        }

        It 'keeps the matching workflows off the cloud and leaves the others on it' {
            $on = Enable-AiContingency -Workflow 'hr-*' -Reason 'data stays on premises' -Confirm:$false
            $on.Changed | Should -BeTrue
            $on.Source | Should -Be 'User'

            $hr = Invoke-AiRequest 'salary bands' @common -Workflow hr-payroll
            $other = Invoke-AiRequest 'slogan' @common -Workflow marketing

            $hr.Backend | Should -Be 'Ollama'
            $hr.FailoverReason | Should -Be 'Contingency'
            $hr.ContingencySource | Should -Be 'User'
            $other.Backend | Should -Be 'Cloud'
            Get-FakeServerHits $cloud | Should -Be 1
        }

        It 'is idempotent' {
            (Enable-AiContingency -Workflow 'hr-*' -Reason 'data stays on premises' -Confirm:$false).Changed | Should -BeFalse
        }

        It 'is visible to another process (persisted)' {
            $json = & (Join-Path $PSHOME pwsh) -NoProfile -Command "`$env:OLLAMACONTINUITY_STATE_DIR = '$stateDir'; Import-Module '$(Get-ModuleManifestPath)'; Get-AiContingency -Workflow hr-payroll | ConvertTo-Json -Compress"
            ($json | ConvertFrom-Json).Active | Should -BeTrue
        }

        It 'logs the prompt and the output of what ran locally' {
            $entry = Get-AiContingencyLog -Workflow 'hr-*' | Select-Object -Last 1
            $entry.Prompt | Should -Be 'salary bands'
            $entry.Output | Should -Be 'ollama: reply to salary bands'
            if (-not $IsWindows) {
                (Get-Item (Join-Path $stateDir 'User/contingency-log.jsonl')).UnixFileMode | Should -Be ([System.IO.UnixFileMode]::UserRead -bor [System.IO.UnixFileMode]::UserWrite)
            }
        }

        It 'Get-AiContingency lists the entry and Disable-AiContingency takes it from the pipeline' {
            Get-AiContingency -Source User | Where-Object Workflow -eq 'hr-*' | Should -Not -BeNullOrEmpty
            $off = Get-AiContingency -Source User | Disable-AiContingency -Confirm:$false
            $off.Changed | Should -Contain $true
            (Invoke-AiRequest 'back' @common -Workflow hr-payroll).Backend | Should -Be 'Cloud'
        }

        It 'a -Duration entry expires by itself' {
            Enable-AiContingency -Workflow short -Duration 00:00:01 -Scope Process -Confirm:$false | Out-Null
            (Get-AiContingency -Workflow short).Active | Should -BeTrue
            Start-Sleep -Milliseconds 1300
            # An open circuit of another test in this process may still show as Automatic; the manual entry is gone.
            (Get-AiContingency -Workflow short).Source | Should -Not -Be 'Process'
            Get-AiContingency -Source Process | Where-Object Workflow -eq 'short' | Should -BeNullOrEmpty
        }

        It 'a workflow that requires approval fails clearly when nobody can approve' {
            # A non-interactive pwsh, as a scheduled task runs it: nobody can approve, so the request must fail.
            $child = @"
`$env:OLLAMACONTINUITY_STATE_DIR = '$stateDir'
`$env:CLOUD_API_URL = '$($cloud.ChatUri)'
`$env:CLOUD_API_KEY = 'sk-PESTER-CHILD-7a1e'
`$env:OLLAMA_URL = '$($ollama.BaseUri)'
Import-Module '$(Get-ModuleManifestPath)'
Enable-AiContingency -Workflow finance -RequireApproval -Scope Process -Confirm:`$false | Out-Null
try { Invoke-AiRequest 'ledger' -Workflow finance -ErrorAction Stop | Out-Null; 'served' } catch { `$_.FullyQualifiedErrorId }
"@
            $id = & (Join-Path $PSHOME pwsh) -NoProfile -NonInteractive -Command $child
            $id | Should -Be 'FailoverNotApproved,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }
    }

    Context 'alerts' {
        It 'sends a Teams card when contingency is enabled and never prints the webhook URL' {
            $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
            $probe.Start(); $port = $probe.LocalEndpoint.Port; $probe.Stop()
            $listener = [System.Net.HttpListener]::new()
            $listener.Prefixes.Add("http://127.0.0.1:$port/")
            $listener.Start()
            try {
                $secretUrl = "http://127.0.0.1:$port/hooks/T0PESTER/xoxb-SECRET-PATH"
                $config = Set-AiContinuityAlert -WebhookUri $secretUrl -Format Teams -NoSystemLog -Scope Process -Confirm:$false
                $config.Webhook | Should -Be 'http://127.0.0.1/***'
                ($config | Out-String) | Should -Not -Match 'SECRET'

                $pending = $listener.GetContextAsync()
                Enable-AiContingency -Workflow alert-test -Scope Process -Confirm:$false | Out-Null
                $pending.Wait(10000) | Should -BeTrue
                $ctx = $pending.Result
                $body = [System.IO.StreamReader]::new($ctx.Request.InputStream).ReadToEnd()
                $ctx.Response.StatusCode = 200
                $ctx.Response.Close()

                $card = $body | ConvertFrom-Json
                $card.type | Should -Be 'message'
                $card.attachments[0].contentType | Should -Be 'application/vnd.microsoft.card.adaptive'
                $card.attachments[0].content.body[0].text | Should -Be 'AI contingency mode enabled'
                (Get-AiContinuityAlert | Out-String) | Should -Not -Match 'SECRET'
            }
            finally {
                $listener.Stop()
                Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false | Out-Null
                Disable-AiContingency -Scope Process -Confirm:$false | Out-Null
            }
        }

        It 'rejects a malformed webhook URL without echoing it' {
            { Set-AiContinuityAlert -WebhookUri 'not-a-url-SECRET' -Scope Process -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'InvalidWebhookUri,OllamaContinuity.Commands.SetAiContinuityAlertCommand'
            try { Set-AiContinuityAlert -WebhookUri 'not-a-url-SECRET' -Scope Process -Confirm:$false -ErrorAction Stop } catch { "$_" | Should -Not -Match 'SECRET' }
        }
    }

    Context 'damaged state fails closed and loud' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $cloud, $ollama, $common = $f.Cloud, $f.Ollama, $f.Common
            $userDir = Join-Path $stateDir 'User'
            New-Item -ItemType Directory -Force $userDir | Out-Null
            $file = Join-Path $userDir 'contingency.json'
            $alerts = Join-Path $userDir 'alerts.json'
        }
        AfterEach {
            Remove-Item -Force $file, $alerts -ErrorAction SilentlyContinue
            Remove-Item -Force "$file.last-good" -ErrorAction SilentlyContinue
            $env:OLLAMACONTINUITY_UNREADABLE_STATE = $null
            $env:OLLAMACONTINUITY_ALERT_WEBHOOK = $null
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'a contingency file with <Name> fails every request closed with ContingencyStateUnreadable' -ForEach @(
            @{ Name = 'a UTF-8 BOM and garbage'; Bytes = [byte[]](0xEF, 0xBB, 0xBF) + [System.Text.Encoding]::UTF8.GetBytes('garbage') }
            @{ Name = 'a truncated entry'; Bytes = [System.Text.Encoding]::UTF8.GetBytes('{"version":1,"entries":[{"workflow":"hr-*","since":"2026-') }
            @{ Name = 'entries null'; Bytes = [System.Text.Encoding]::UTF8.GetBytes('{"version":1,"entries":null}') }
            @{ Name = 'a wrong type'; Bytes = [System.Text.Encoding]::UTF8.GetBytes('{"version":1,"entries":[{"workflow":42,"since":"2026-12-01T00:00:00Z"}]}') }
            @{ Name = 'nothing in it'; Bytes = [byte[]]@() }
        ) {
            [System.IO.File]::WriteAllBytes($file, $Bytes)
            $before = Get-FakeServerHits $cloud
            foreach ($wf in 'hr-payroll', 'marketing') {
                { Invoke-AiRequest 'salary review' @common -Workflow $wf -ErrorAction Stop } |
                    Should -Throw -ErrorId 'ContingencyStateUnreadable,OllamaContinuity.Commands.InvokeAiRequestCommand'
            }
            try { Invoke-AiRequest 'q' @common -ErrorAction Stop } catch { $_.ErrorDetails.Message | Should -Match ([regex]::Escape($file)) }
            Get-FakeServerHits $cloud | Should -Be $before
        }

        It 'a UTF-8 BOM alone is read through: the contingency holds' {
            [System.IO.File]::WriteAllBytes($file, [byte[]](0xEF, 0xBB, 0xBF) + [System.Text.Encoding]::UTF8.GetBytes('{"version":1,"entries":[{"since":"2026-12-01T00:00:00Z"}]}'))
            (Invoke-AiRequest 'q' @common -Workflow anything).Backend | Should -Be 'Ollama'
        }

        It 'OLLAMACONTINUITY_UNREADABLE_STATE=Ollama serves from Ollama, with a warning naming the file' {
            Set-Content -Path $file -Value '{"version":1,"entries":null}'
            $env:OLLAMACONTINUITY_UNREADABLE_STATE = 'Ollama'
            $before = Get-FakeServerHits $cloud
            $r = Invoke-AiRequest 'q' @common -Workflow sales -WarningVariable w -WarningAction SilentlyContinue
            $r.Backend | Should -Be 'Ollama'
            ($w -join "`n") | Should -Match ([regex]::Escape($file))
            Get-FakeServerHits $cloud | Should -Be $before
        }

        It 'the last good copy keeps what it covered on Ollama, with a warning' {
            Enable-AiContingency -Workflow 'hr-*' -Confirm:$false | Out-Null
            "$file.last-good" | Should -Exist
            Set-Content -Path $file -Value '{"version":1,"entries":[{"workf'
            $r = Invoke-AiRequest 'q' @common -Workflow hr-payroll -WarningVariable w -WarningAction SilentlyContinue
            $r.Backend | Should -Be 'Ollama'
            ($w -join "`n") | Should -Match 'last good copy'
            { Invoke-AiRequest 'q' @common -Workflow sales -ErrorAction Stop } | Should -Throw -ErrorId 'ContingencyStateUnreadable,OllamaContinuity.Commands.InvokeAiRequestCommand'
        }

        It '{"entries": null} is a clear error naming the field in Get-, Enable- and Disable-AiContingency' {
            Set-Content -Path $file -Value '{"version":1,"entries":null}'
            { Get-AiContingency -ErrorAction Stop } | Should -Throw -ErrorId 'ContingencyStateUnreadable,OllamaContinuity.Commands.GetAiContingencyCommand'
            { Enable-AiContingency -Workflow x -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'StateFileDamaged,OllamaContinuity.Commands.EnableAiContingencyCommand'
            { Disable-AiContingency -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'StateFileDamaged,OllamaContinuity.Commands.DisableAiContingencyCommand'
            try { Get-AiContingency -ErrorAction Stop } catch { $_.ErrorDetails.Message | Should -Match "'entries'" }
        }

        It 'one bad line in the contingency log is skipped with a warning naming the line' {
            $log = Join-Path $userDir 'contingency-log.jsonl'
            Set-Content -Path $log -Value @(
                '{"timestamp":"2026-12-01T10:00:00Z","requestId":"a"}'
                '{"timestamp":"2026-12-01T10:00:01Z","requestId":"b","messages":{}}'
                '{"timestamp":"2026-12-01T10:00:02Z","requestId":"c"}'
            )
            $entries = Get-AiContingencyLog -WarningVariable w -WarningAction SilentlyContinue
            $entries.RequestId | Should -Be @('a', 'c')
            ($w -join "`n") | Should -Match 'line 2'
            Remove-Item $log
        }

        It 'a FIFO given as the contingency log is an error, not a hang' -Skip:($IsWindows -or -not (Get-Command mkfifo -ErrorAction SilentlyContinue)) {
            $fifo = Join-Path $userDir 'fifo.jsonl'
            & mkfifo $fifo
            { Get-AiContingencyLog -Path $fifo -ErrorAction Stop } | Should -Throw -ErrorId 'ContingencyLogUnreadable,OllamaContinuity.Commands.GetAiContingencyLogCommand'
            Remove-Item $fifo
        }

        It 'a damaged alerts.json is an error from Get- and Set-AiContinuityAlert, and -Clear removes it' {
            Set-Content -Path $alerts -Value '{"webhookUri":"https://hooks.example.com/SECRETPATH","format":'
            { Get-AiContinuityAlert -ErrorAction Stop } | Should -Throw -ErrorId 'AlertSettingsDamaged,OllamaContinuity.Commands.GetAiContinuityAlertCommand'
            { Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/x' -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'AlertSettingsDamaged,OllamaContinuity.Commands.SetAiContinuityAlertCommand'
            try { Get-AiContinuityAlert -ErrorAction Stop } catch { "$_" | Should -Not -Match 'SECRETPATH' }
            Set-AiContinuityAlert -Clear -Confirm:$false | Out-Null
            { Get-AiContinuityAlert -ErrorAction Stop -WarningAction SilentlyContinue } | Should -Not -Throw
        }

        It 'a damaged alerts.json makes a request that alerts warn' {
            Set-Content -Path $alerts -Value 'not json'
            $dead = Start-FakeServer -Api Ollama -Name dead -Fault 'status:500'
            try {
                $down = @{ CloudUri = $common.CloudUri; CloudApiKey = $key; OllamaUri = $dead.BaseUri; LogPath = $common.LogPath }
                Invoke-AiRequest 'q' @down -CloudUri 'http://127.0.0.1:9/v1/chat/completions' -ErrorAction SilentlyContinue -WarningVariable w -WarningAction SilentlyContinue | Out-Null
                ($w -join "`n") | Should -Match 'may reach nobody'
                ($w -join "`n") | Should -Match ([regex]::Escape($alerts))
            }
            finally { $dead | Stop-FakeServer }
        }

        It 'an invalid OLLAMACONTINUITY_ALERT_WEBHOOK warns without showing it' {
            $env:OLLAMACONTINUITY_ALERT_WEBHOOK = 'hooks.example.com/no-scheme-SECRET'
            Get-AiContinuityAlert -WarningVariable w -WarningAction SilentlyContinue | Out-Null
            ($w -join "`n") | Should -Match 'OLLAMACONTINUITY_ALERT_WEBHOOK is set but is not an absolute'
            ($w -join "`n") | Should -Not -Match 'no-scheme'
        }
    }
}
