#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# One Describe per cmdlet that had none of its own, exercising it as an admin would at the prompt: the pipeline,
# the default view, -WhatIf, and the errors. State in a private folder; the firewall through a recording runner (no
# firewall tool runs); fake servers on 127.0.0.1 only.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-admin-{0}" -f [guid]::NewGuid().ToString('n'))
    $env:OLLAMACONTINUITY_STATE_DIR = $script:stateDir

    try { Set-OllamaFirewallRule -AllowFrom 'load;engine' -ErrorAction Stop } catch { }
    $engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' } | Select-Object -First 1
    $script:envType = $engine.GetType('OllamaContinuity.Firewall.FirewallEnvironment', $true)
    $script:runnerType = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)

    function Use-Runner {
        # A recording runner (answers: @(prefix, exitCode, stdout)); nothing reaches a real firewall.
        param([object[]] $Answers = @())
        $runner = $script:runnerType::new()
        foreach ($a in $Answers) { $null = $runner.Answer($a[0], $a[1], ($a.Count -gt 2 ? $a[2] : ''), '') }
        $fe = $script:envType::new(); $fe.Runner = $runner; $fe.Platform = 'Linux'; $fe.NftablesIncludeDirectory = '/etc/nftables.d'
        $script:envType::Default = $fe
        if ($script:envType::Default.Runner -ne $runner) { throw 'The recording runner is not installed; refusing to go on.' }
        $runner
    }

    function Get-WhatIfText {
        param([scriptblock] $Script)
        $file = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-admin-whatif-{0}.txt" -f [guid]::NewGuid().ToString('n'))
        Start-Transcript -Path $file -UseMinimalHeader | Out-Null
        try { & $Script } finally { Stop-Transcript | Out-Null }
        $text = Get-Content -Raw $file
        Remove-Item $file
        $text
    }

    $script:nftAbsent = @(@('nft -j list', 1), @('cat', 1))
    $script:ours = '{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}'
}

AfterAll {
    $null = Use-Runner
    Disable-AiContingency -Scope Process -Confirm:$false | Out-Null
    Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false | Out-Null
    $env:OLLAMACONTINUITY_STATE_DIR = $script:savedStateDir
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Set-OllamaFirewallRule' {
    It 'takes the sources from a CSV''s AllowFrom column by property name' {
        $csv = Join-Path $TestDrive 'sources.csv'
        "AllowFrom,Note`n10.8.0.0/24,office`nfd00::/64,lab" | Set-Content $csv
        $runner = Use-Runner $nftAbsent
        $r = Import-Csv $csv | Set-OllamaFirewallRule -Backend Nftables -Confirm:$false
        $r.Changed | Should -BeTrue
        (($runner.Commands | Where-Object FileName -eq 'tee').StandardInput) | Should -Match 'elements = \{ 10\.8\.0\.0/24 \}[\s\S]*elements = \{ fd00::/64 \}'
    }

    It '-WhatIf prints the commands and changes nothing' {
        $runner = Use-Runner $nftAbsent
        $text = Get-WhatIfText { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -WhatIf }
        $text | Should -Match '(?s)What if: .*nft -f -'
        $runner.CommandLines | ForEach-Object { $_ | Should -Match '^(nft -j list|cat) ' }
    }

    It 'shows the rule as a table: backend, port, active, changed, command count, sources' {
        $null = Use-Runner $nftAbsent
        $text = Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Confirm:$false | Out-String -Width 120
        $text | Should -Match '(?m)^Backend\s+Port\s+Active\s+Changed\s+Commands\s+AllowFrom'
        $text | Should -Match '(?m)^Nftables\s+11434\s+(True|False)\s+True\s+4\s'
    }

    It 'refuses everyone (0.0.0.0/0) without -Force, before anything runs' {
        $runner = Use-Runner
        { Set-OllamaFirewallRule -AllowFrom 0.0.0.0/0 -Confirm:$false } | Should -Throw -ErrorId 'AllowFromEverywhere,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
        $runner.Commands.Count | Should -Be 0
    }
}

Describe 'Get-OllamaFirewallRule' {
    It 'takes Port and Backend by property name from the pipeline' {
        $null = Use-Runner (, @('nft -j list', 0, $ours))
        $r = [pscustomobject]@{ Port = 11434; Backend = 'Nftables' } | Get-OllamaFirewallRule
        $r.Backend | Should -Be 'Nftables'
        $r.AllowFrom | Should -Be @('10.8.0.0/24')
        $r.Active | Should -BeTrue
    }

    It 'Format-List shows the source of truth and the warnings' {
        $null = Use-Runner (, @('nft -j list', 0, $ours))
        $text = Get-OllamaFirewallRule -Backend Nftables | Format-List | Out-String -Width 200
        $text | Should -Match 'SourceOfTruth\s+: nft list table inet ollama_guard_11434'
        $text | Should -Match 'AllowFrom\s+: 10\.8\.0\.0/24'
    }

    It 'says FirewallBackendNotFound when no firewall tool exists' {
        $null = Use-Runner (, @('', 127))
        { Get-OllamaFirewallRule -ErrorAction Stop } | Should -Throw -ErrorId 'FirewallBackendNotFound,OllamaContinuity.Commands.GetOllamaFirewallRuleCommand'
    }
}

Describe 'Remove-OllamaFirewallRule' {
    It 'takes what Get-OllamaFirewallRule returns from the pipeline, and -WhatIf removes nothing' {
        $runner = Use-Runner (, @('nft -j list', 0, $ours))
        $text = Get-WhatIfText { Get-OllamaFirewallRule -Backend Nftables | Remove-OllamaFirewallRule -WhatIf }
        $text | Should -Match '(?s)What if: .*nft delete table inet ollama_guard_11434'
        $runner.CommandLines | Should -Not -Contain 'nft delete table inet ollama_guard_11434'
    }

    It 'removes the rule and says it changed' {
        $runner = Use-Runner (, @('nft -j list', 0, $ours))
        $r = Remove-OllamaFirewallRule -Backend Nftables -Confirm:$false
        $r.Changed | Should -BeTrue
        $runner.CommandLines | Should -Contain 'nft delete table inet ollama_guard_11434'
    }

    It 'an absent rule is no change and no error' {
        $null = Use-Runner $nftAbsent
        $r = Remove-OllamaFirewallRule -Backend Nftables -Confirm:$false -ErrorVariable e
        $r.Changed | Should -BeFalse
        $e | Should -BeNullOrEmpty
    }
}

Describe 'Enable-AiContingency' {
    AfterEach { Disable-AiContingency -Scope Process -Confirm:$false | Out-Null }

    It 'takes workflow names from the pipeline: one status each' {
        $on = 'hr-*', 'legal' | Enable-AiContingency -Scope Process -Reason 'data stays on premises' -Confirm:$false
        $on.Workflow | Should -Be @('hr-*', 'legal')
        $on | ForEach-Object { $_.Active | Should -BeTrue; $_.Source | Should -Be 'Process' }
    }

    It 'shows a table of source, workflow, active, approval, since, until, changed, reason' {
        $text = Enable-AiContingency -Workflow payroll -Scope Process -Duration 01:00:00 -Reason 'audit week' -Confirm:$false | Out-String -Width 160
        $text | Should -Match '(?m)^Source\s+Workflow\s+Active\s+Approval\s+Since\s+Until\s+Changed\s+Reason'
        $text | Should -Match '(?m)^Process\s+payroll\s+True\s.*audit week'
    }

    It '-WhatIf turns nothing on' {
        Enable-AiContingency -Workflow whatif-only -Scope User -WhatIf | Should -BeNullOrEmpty
        @(Get-AiContingency -Source User | Where-Object Workflow -eq 'whatif-only').Count | Should -Be 0
    }

    It 'refuses a zero -Duration with InvalidDuration' {
        { Enable-AiContingency -Workflow x -Scope Process -Duration 0 -Confirm:$false } | Should -Throw -ErrorId 'InvalidDuration,OllamaContinuity.Commands.EnableAiContingencyCommand'
    }
}

Describe 'Disable-AiContingency' {
    It 'takes what Get-AiContingency returns from the pipeline (Workflow by property name)' {
        'one', 'two' | Enable-AiContingency -Scope Process -Confirm:$false | Out-Null
        $off = Get-AiContingency -Source Process | Disable-AiContingency -Scope Process -Confirm:$false
        @($off | Where-Object Changed).Workflow | Sort-Object | Should -Be @('one', 'two')
        @(Get-AiContingency -Source Process | Where-Object Active).Count | Should -Be 0
    }

    It '-WhatIf leaves it on' {
        Enable-AiContingency -Workflow stays-on -Scope Process -Confirm:$false | Out-Null
        Disable-AiContingency -Workflow stays-on -Scope Process -WhatIf | Should -BeNullOrEmpty
        (Get-AiContingency -Source Process | Where-Object Workflow -eq 'stays-on').Active | Should -BeTrue
        Disable-AiContingency -Workflow stays-on -Scope Process -Confirm:$false | Out-Null
    }

    It 'refuses an unknown scope' {
        { Disable-AiContingency -Scope Galaxy -Confirm:$false } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.DisableAiContingencyCommand'
    }
}

Describe 'Get-AiContingency' {
    BeforeAll { Enable-AiContingency -Workflow 'hr-*' -Scope Process -Reason 'pilot' -Confirm:$false | Out-Null }
    AfterAll { Disable-AiContingency -Scope Process -Confirm:$false | Out-Null }

    It 'answers for workflow names from the pipeline' {
        $v = 'hr-payroll', 'sales' | Get-AiContingency
        ($v | Where-Object Workflow -eq 'hr-payroll').Active | Should -BeTrue
        @($v | Where-Object { $_.Workflow -eq 'sales' -and $_.Active }).Count | Should -Be 0
    }

    It 'filters by -Source and shows the table view' {
        $text = Get-AiContingency -Source Process | Out-String -Width 160
        $text | Should -Match '(?m)^Source\s+Workflow\s+Active'
        $text | Should -Match '(?m)^Process\s+hr-\*\s+True'
    }

    It 'refuses an unknown -Source' {
        { Get-AiContingency -Source Cloud } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.GetAiContingencyCommand'
    }
}

Describe 'Get-AiContingencyLog' {
    BeforeAll {
        $log = Join-Path $TestDrive 'contingency-log.jsonl'
        $now = [DateTimeOffset]::UtcNow
        @(
            @{ timestamp = $now.AddHours(-3).ToString('o'); requestId = 'a1'; workflow = 'hr-payroll'; contingencySource = 'User'; failoverReason = 'Contingency'; model = 'llama3.1:8b'; latencyMs = 120; messages = @(@{ role = 'user'; content = 'Summarise the payroll run' }); output = 'Payroll summary' }
            @{ timestamp = $now.AddHours(-2).ToString('o'); requestId = 'a2'; workflow = 'legal'; contingencySource = 'Automatic'; failoverReason = 'Contingency'; model = 'llama3.1:8b'; latencyMs = 90; messages = @(@{ role = 'user'; content = 'Check the NDA' }); output = 'NDA checked' }
            @{ timestamp = $now.AddHours(-1).ToString('o'); requestId = 'a3'; workflow = 'hr-hiring'; contingencySource = 'User'; failoverReason = 'Contingency'; model = 'llama3.1:8b'; latencyMs = 80; messages = @(@{ role = 'user'; content = 'Draft the offer' }); output = 'Offer drafted' }
        ) | ForEach-Object { $_ | ConvertTo-Json -Compress -Depth 4 } | Set-Content $log
    }

    It 'filters by workflow pattern and keeps the last ones' {
        (Get-AiContingencyLog -Path $log -Workflow 'hr-*').RequestId | Should -Be @('a1', 'a3')
        (Get-AiContingencyLog -Path $log -Last 1).RequestId | Should -Be 'a3'
        (Get-AiContingencyLog -Path $log -Since (Get-Date).AddMinutes(-150)).RequestId | Should -Be @('a2', 'a3')
    }

    It 'shows a table of time, workflow, source, model, prompt and output' {
        $text = Get-AiContingencyLog -Path $log | Out-String -Width 160
        $text | Should -Match '(?m)^Timestamp\s+Workflow\s+Source\s+Model\s+Prompt\s+Output'
        $text | Should -Match 'legal\s+Automatic\s+llama3\.1:8b\s+Check the NDA\s+NDA checked'
    }

    It 'says ContingencyLogNotFound for a -Path that does not exist' {
        { Get-AiContingencyLog -Path (Join-Path $TestDrive 'nope.jsonl') } | Should -Throw -ErrorId 'ContingencyLogNotFound,OllamaContinuity.Commands.GetAiContingencyLogCommand'
    }
}

Describe 'Set-AiContinuityAlert' {
    AfterEach { Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false | Out-Null }

    It 'shows the configuration with the webhook redacted' {
        $text = Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/services/T0/B0/SECRET-TOKEN' -Format Slack -Scope Process -Confirm:$false | Out-String -Width 160
        $text | Should -Match '(?m)^Scope\s+Effective\s+Format\s+SystemLog\s+Changed\s+Webhook'
        $text | Should -Match '(?m)^Process\s+True\s+Slack\s'
        $text | Should -Not -Match 'SECRET'
    }

    It '-WhatIf writes no configuration' {
        Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/x' -Scope User -WhatIf | Should -BeNullOrEmpty
        (Get-AiContinuityAlert -Scope User).Webhook | Should -BeNullOrEmpty
    }

    It 'refuses an unknown -Format' {
        { Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/x' -Format Email -Scope Process } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.SetAiContinuityAlertCommand'
    }
}

Describe 'Get-AiContinuityAlert' {
    It 'gives one row per scope asked for, in a table' {
        Set-AiContinuityAlert -WebhookUri 'https://hooks.example.com/get' -Scope Process -NoSystemLog -Confirm:$false | Out-Null
        try {
            $rows = Get-AiContinuityAlert -Scope Process, User
            $rows.Scope | Should -Be @('Process', 'User')
            ($rows | Where-Object Scope -eq 'Process').Webhook | Should -Be 'https://hooks.example.com/***'
            ($rows | Out-String -Width 160) | Should -Match '(?m)^Scope\s+Effective\s+Format'
        }
        finally { Set-AiContinuityAlert -Clear -Scope Process -Confirm:$false | Out-Null }
    }

    It '-Delivery lists delivery records (none yet here) without error' {
        $d = Get-AiContinuityAlert -Delivery -Since (Get-Date).AddMinutes(-5) -ErrorVariable e
        $e | Should -BeNullOrEmpty
        @($d | Where-Object { $_.pstypenames[0] -ne 'OllamaContinuity.Alerts.AlertDelivery' }).Count | Should -Be 0
    }

    It 'refuses -Scope with -Delivery (two parameter sets)' {
        { Get-AiContinuityAlert -Delivery -Scope User } | Should -Throw -ErrorId 'AmbiguousParameterSet,OllamaContinuity.Commands.GetAiContinuityAlertCommand'
    }
}

Describe 'Start-FailoverDrill' {
    BeforeAll {
        $f = Start-FailoverFixture -ApiKey (ConvertTo-SecureString 'sk-PESTER-ADMIN-1f2e' -AsPlainText -Force)
        $common = $f.Common
    }
    AfterAll { $f | Stop-FailoverFixture }

    It '-WhatIf describes the simulated block and sends nothing' {
        $text = Get-WhatIfText { Start-FailoverDrill @common -Duration 00:00:05 -WhatIf }
        $text | Should -Match 'What if: .*simulated block of http://127\.0\.0\.1:\d+/v1/chat/completions'
        Get-FakeServerHits $f.Cloud | Should -Be 0
        Get-FakeServerHits $f.Ollama | Should -Be 0
    }

    It 'refuses a -QualityCheck that is not a valid regular expression before anything runs' {
        { Start-FailoverDrill @common -QualityCheck '([' -Confirm:$false } | Should -Throw -ErrorId 'InvalidQualityCheck,OllamaContinuity.Commands.StartFailoverDrillCommand'
        Get-FakeServerHits $f.Cloud | Should -Be 0
    }
}

Describe 'Stop-FailoverDrill' {
    It 'with no drill block left over: Found is False, shown as a table' {
        $r = Stop-FailoverDrill -Confirm:$false
        $r.Found | Should -BeFalse
        ($r | Out-String -Width 120) | Should -Match '(?m)^Found\s+Removed\s+Method\s+DrillId\s+Detail'
    }

    It '-WhatIf leaves a leftover marker in place' {
        $marker = Join-Path $stateDir 'User/drill-block.json'
        New-Item -ItemType Directory -Force (Split-Path $marker) | Out-Null
        @{ drillId = 'left'; method = 'Simulated'; cloudEndpoint = 'https://api.openai.com/v1/chat/completions'; blockedOrigin = 'https://api.openai.com'; processId = -1; startedAt = (Get-Date).ToString('o') } |
            ConvertTo-Json | Set-Content $marker
        Stop-FailoverDrill -WhatIf | Out-Null
        $marker | Should -Exist
        (Stop-FailoverDrill -Confirm:$false).Removed | Should -BeTrue
        $marker | Should -Not -Exist
    }
}
