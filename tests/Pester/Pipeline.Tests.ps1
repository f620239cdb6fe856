#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Pipelines as an admin writes them: Import-Csv into Invoke-AiRequest (Prompt, Workflow and SystemPrompt bound by
# property name), and every output type of the module into Export-Csv / ConvertTo-Csv without a type name such as
# System.String[] in a cell. Fake servers on 127.0.0.1 only; the firewall through a recording runner (no tool runs).

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-pipeline-{0}" -f [guid]::NewGuid().ToString('n'))
    $env:OLLAMACONTINUITY_STATE_DIR = $script:stateDir
    $script:key = ConvertTo-SecureString -String 'sk-PESTER-PIPELINE-7d21c9' -AsPlainText -Force

    # A type name in a CSV cell: .NET's (System.String[], System.Collections.Generic.List`1[...]) or the module's own.
    $script:typeName = 'System\.[A-Z][A-Za-z]+|OllamaContinuity\.(Failover|Firewall|Drill|Contingency|Alerts|Exposure|Hardening)\.'

    function ConvertTo-CsvText {
        param([Parameter(Mandatory)] [object[]] $InputObject)
        ($InputObject | ConvertTo-Csv -NoTypeInformation) -join "`n"
    }
}

AfterAll {
    Disable-AiContingency -Scope Process -Confirm:$false | Out-Null
    $env:OLLAMACONTINUITY_STATE_DIR = $script:savedStateDir
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Import-Csv | Invoke-AiRequest' {
    BeforeAll {
        $f = Start-FailoverFixture -ApiKey $key
        $cloud, $common, $log = $f.Cloud, $f.Common, $f.Log
        $csv = Join-Path $TestDrive 'prompts.csv'
        @(
            [pscustomobject]@{ Prompt = 'What is 2+2?'; Workflow = 'reports'; SystemPrompt = 'Answer tersely.' }
            [pscustomobject]@{ Prompt = 'Name a colour'; Workflow = ''; SystemPrompt = '' }
            [pscustomobject]@{ Prompt = 'Summarise the ticket'; Workflow = 'ticket-triage'; SystemPrompt = 'You triage tickets.' }
        ) | Export-Csv -Path $csv -NoTypeInformation
        $results = Import-Csv $csv | Invoke-AiRequest @common -LogContent
        $logged = Get-Content $log | ConvertFrom-Json
    }
    AfterAll { $f | Stop-FailoverFixture }

    It 'sends each row''s Prompt column as the prompt, not the whole row' {
        $results.Count | Should -Be 3
        $results.Text | Should -Be @('cloud: reply to What is 2+2?', 'cloud: reply to Name a colour', 'cloud: reply to Summarise the ticket')
        $logged.Count | Should -Be 3
        $logged | ForEach-Object { $_.messages[-1].content | Should -Not -Match '@\{|Workflow=' }
    }

    It 'binds each row''s Workflow (an empty cell is no workflow)' {
        $results[0].Workflow | Should -Be 'reports'
        $results[1].Workflow | Should -BeNullOrEmpty
        $results[2].Workflow | Should -Be 'ticket-triage'
        $logged.workflow | Should -Be @('reports', $null, 'ticket-triage')
    }

    It 'binds each row''s SystemPrompt (an empty cell is none)' {
        $logged[0].systemPrompt | Should -Be 'Answer tersely.'
        $logged[1].systemPrompt | Should -BeNullOrEmpty
        $logged[2].systemPrompt | Should -Be 'You triage tickets.'
    }

    It 'a row without a prompt is one error, and the other rows are still sent' {
        $bad = Join-Path $TestDrive 'bad.csv'
        "Prompt,Workflow`n""first"",a`n,b`n""third"",c" | Set-Content -Path $bad
        $out = Import-Csv $bad | Invoke-AiRequest @common -ErrorVariable errs -ErrorAction SilentlyContinue
        $out.Text | Should -Be @('cloud: reply to first', 'cloud: reply to third')
        $out.Workflow | Should -Be @('a', 'c')
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Match 'Prompt|ParameterArgumentValidationError'
    }

    It 'strings still bind by value' {
        $out = 'one', 'two' | Invoke-AiRequest @common -Workflow strings
        $out.Text | Should -Be @('cloud: reply to one', 'cloud: reply to two')
        $out.Workflow | Should -Be @('strings', 'strings')
    }
}

Describe 'Every output type in Export-Csv and ConvertTo-Csv' {
    Context 'AiResponse (Invoke-AiRequest) with its attempts' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:503' -ApiKey $key
            $common = $f.Common
            $r = Invoke-AiRequest 'csv please' @common -WarningAction SilentlyContinue
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'has no type name in any cell, and Attempts reads as the route' {
            # The cloud's 503 is retried once (a one-off 5xx may pass), then Ollama serves.
            $r.Attempts.Count | Should -Be 3
            $text = ConvertTo-CsvText $r
            $text | Should -Not -Match $typeName
            $row = $text | ConvertFrom-Csv
            $row.Attempts | Should -Match '^Cloud:ServerError/503\(\d+ms\); Cloud:ServerError/503\(\d+ms\); Ollama:Success\(\d+ms\)$'
            ConvertTo-CsvText $r.Attempts | Should -Not -Match $typeName
        }

        It 'keeps Attempts a list for scripts and JSON' {
            $r.Attempts[2].Backend | Should -Be 'Ollama'
            ($r | ConvertTo-Json -Depth 3 | ConvertFrom-Json).Attempts.Count | Should -Be 3
        }
    }

    Context 'FirewallRuleInfo (Set-, Get-, Remove-OllamaFirewallRule)' {
        BeforeAll {
            try { Set-OllamaFirewallRule -AllowFrom 'load;engine' -ErrorAction Stop } catch { }
            $engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' } | Select-Object -First 1
            $envType = $engine.GetType('OllamaContinuity.Firewall.FirewallEnvironment', $true)
            $runnerType = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)
            $saved = $envType::Default
            $runner = $runnerType::new()
            $null = $runner.Answer('nft -j list', 1, '', 'Error: No such file or directory')
            $null = $runner.Answer('cat', 1, '', '')
            $fe = $envType::new()
            $fe.Runner = $runner
            $fe.Platform = 'Linux'
            $envType::Default = $fe
            if ($envType::Default.Runner -ne $runner) { throw 'The recording runner is not installed; refusing to go on.' }
            $set = Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24, fd00::/64 -Backend Nftables -Confirm:$false
            # The firewall now holds the table as nft -j prints it, and the include file the same ruleset.
            $ruleset = ($runner.Commands | Where-Object FileName -eq 'tee').StandardInput
            $json = '{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[{"prefix":{"addr":"fd00::","len":64}}]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}'
            $runner = $runnerType::new()
            $null = $runner.Answer('nft -j list', 0, $json, '')
            $null = $runner.Answer('cat', 0, $ruleset, '')
            $fe.Runner = $runner
            $got = Get-OllamaFirewallRule -Backend Nftables
        }
        AfterAll {
            # A fresh recording runner: nothing later in this session can reach a real firewall by accident.
            $fe = $envType::new(); $fe.Runner = $runnerType::new(); $envType::Default = $fe
        }

        It 'AllowFrom, Commands and Warnings are readable text in the CSV' {
            $set.Commands.Count | Should -Be 4
            $text = ConvertTo-CsvText $set, $got
            $text | Should -Not -Match $typeName
            $row = $text | ConvertFrom-Csv
            $row[1].AllowFrom | Should -Be '10.8.0.0/24; fd00::/64'
            $row[0].Commands | Should -Match '(?s)^nft -c -f -.*; nft -f -.*; mkdir -p /etc/nftables\.d; tee /etc/nftables\.d/'

        }

        It 'round-trips through Export-Csv and Import-Csv' {
            $path = Join-Path $TestDrive 'rules.csv'
            $got | Export-Csv -Path $path -NoTypeInformation
            $back = Import-Csv $path
            $back.AllowFrom -split '; ' | Should -Be @('10.8.0.0/24', 'fd00::/64')
            $back.Backend | Should -Be 'Nftables'
        }

        It 'stays a list for scripts' {
            $got.AllowFrom -contains 'fd00::/64' | Should -BeTrue
            $got.AllowFrom[0] | Should -Be '10.8.0.0/24'
            ($got | ConvertTo-Json | ConvertFrom-Json).AllowFrom | Should -Be @('10.8.0.0/24', 'fd00::/64')
        }
    }

    Context 'contingency: ContingencyStatus, ContingencyLogEntry (with its messages), AlertConfiguration' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $on = Enable-AiContingency -Scope Process -Workflow 'csv-*' -Reason 'CSV test' -Confirm:$false
            $common = $f.Common
            $null = Invoke-AiRequest 'local only' @common -Workflow csv-batch -SystemPrompt 'Be brief.'
            $entries = @(Get-AiContingencyLog -Workflow 'csv-*')
            $status = @(Get-AiContingency)
            $alerts = @(Get-AiContinuityAlert -Scope Process, User)
        }
        AfterAll {
            Disable-AiContingency -Scope Process -Confirm:$false | Out-Null
            $f | Stop-FailoverFixture
        }

        It 'the contingency log''s Messages are the conversation, not a list type' {
            $entries.Count | Should -BeGreaterOrEqual 1
            $text = ConvertTo-CsvText $entries
            $text | Should -Not -Match $typeName
            ($text | ConvertFrom-Csv)[-1].Messages | Should -Be 'user: local only'
            $entries[-1].Messages[0].Role | Should -Be 'user'
        }

        It 'ContingencyStatus and AlertConfiguration have no type name' {
            $on.Workflow | Should -Be 'csv-*'
            ConvertTo-CsvText (@($on) + $status) | Should -Not -Match $typeName
            $alerts.Count | Should -Be 2
            ConvertTo-CsvText $alerts | Should -Not -Match $typeName
        }
    }

    Context 'DrillReport with its steps, probes and alerts; DrillCleanupResult' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $common = $f.Common
            $report = Start-FailoverDrill -Duration 00:00:02 -Interval 00:00:00.5 -SkipAlertCheck @common -RecoveryTimeout 00:01:00 -Confirm:$false -ProgressAction SilentlyContinue
            $cleanup = Stop-FailoverDrill -Confirm:$false
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'the report''s Steps, Probes, Alerts, OllamaEndpoints and Failures are text in its CSV row' {
            $report.Outcome | Should -Be 'Passed'
            $text = ConvertTo-CsvText $report
            $text | Should -Not -Match $typeName
            $row = $text | ConvertFrom-Csv
            $row.Steps | Should -Be 'Preflight: Passed; Block: Passed; Failover: Passed; Alert: Skipped; Unblock: Passed; Recovery: Passed'
            $row.Probes | Should -Match '^#1 Preflight InProcess preflight-cloud Cloud \d+ms Passed; #2 Preflight InProcess preflight-ollama Ollama \d+ms Passed; #3 Failover InProcess default Ollama \d+ms Passed'
            $row.OllamaEndpoints | Should -Be ($f.Ollama.BaseUri.TrimEnd('/') + '/api/chat')
        }

        It 'each step, probe and the cleanup result export on their own' {
            ConvertTo-CsvText $report.Steps | Should -Not -Match $typeName
            ConvertTo-CsvText $report.Probes | Should -Not -Match $typeName
            ConvertTo-CsvText $cleanup | Should -Not -Match $typeName
            ($report.Probes | ConvertTo-Csv | ConvertFrom-Csv).Count | Should -Be $report.Probes.Count
        }
    }

    Context 'HardeningSetting and ExposureFinding' -Skip:(-not $IsLinux) {
        It 'have no type name' {
            $root = Join-Path $TestDrive 'hardening'
            New-Item -ItemType Directory -Path (Join-Path $root 'etc/systemd/system') -Force | Out-Null
            Set-Content -Path (Join-Path $root 'etc/systemd/system/ollama.service') -Value "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama" -NoNewline
            $settings = Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -AllowedOrigins 'https://a.example.com', 'https://b.example.com' -WarningAction SilentlyContinue
            ConvertTo-CsvText $settings | Should -Not -Match $typeName
            $findings = Test-OllamaExposure -Root $root -WarningAction SilentlyContinue
            $findings.Count | Should -BeGreaterThan 3
            ConvertTo-CsvText $findings | Should -Not -Match $typeName
        }
    }
}
