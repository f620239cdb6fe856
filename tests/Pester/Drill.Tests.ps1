#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-drill-{0}" -f [guid]::NewGuid().ToString('n'))
    $env:OLLAMACONTINUITY_STATE_DIR = $script:stateDir
    $script:key = ConvertTo-SecureString -String 'sk-PESTER-DRILL-93be07' -AsPlainText -Force
    $script:marker = Join-Path $script:stateDir 'User/drill-block.json'
}

AfterAll {
    $env:OLLAMACONTINUITY_STATE_DIR = $script:savedStateDir
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Start-FailoverDrill and Stop-FailoverDrill' {
    Context 'module surface' {
        It '<_> is exported with help and examples' -ForEach 'Start-FailoverDrill', 'Stop-FailoverDrill' {
            (Get-Command $_ -Module OllamaContinuity).CommandType | Should -Be 'Cmdlet'
            @((Get-Help $_ -Full).examples.example).Count | Should -BeGreaterOrEqual 3
        }

        It 'Start-FailoverDrill is ConfirmImpact High with -WhatIf' {
            $cmd = Get-Command Start-FailoverDrill
            $cmd.Parameters.Keys | Should -Contain 'WhatIf'
            $cmd.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact | Should -Be 'High'
            ($cmd.Parameters['BlockMethod'].Attributes.ValidValues -join ',') | Should -Be 'Simulated,Firewall,Contingency'
            ($cmd.Parameters['ReportFormat'].Attributes.ValidValues -join ',') | Should -Be 'Markdown,Json,Html,Csv'
            $cmd.Parameters['GatewayToken'].ParameterType | Should -Be ([securestring])
        }
    }

    Context 'a simulated drill against fake servers' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $cloud, $ollama, $common = $f.Cloud, $f.Ollama, $f.Common
            $reportDir = Join-Path $stateDir 'reports'
            $report = Start-FailoverDrill -Duration 00:00:03 -Interval 00:00:00.5 -SkipAlertCheck -QualityCheck 'reply' @common -ReportPath (Join-Path $reportDir 'drill.md') -RecoveryTimeout 00:01:30 -Confirm:$false -ProgressAction SilentlyContinue
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'passes' {
            $report.Outcome | Should -Be 'Passed'
            ($report.Steps.Name -join ',') | Should -Be 'Preflight,Block,Failover,Alert,Unblock,Recovery'
        }

        It 'serves every probe during the block from Ollama with the failover line' {
            $during = $report.Probes | Where-Object Phase -eq 'Failover'
            $during.Count | Should -BeGreaterOrEqual 3
            $during | ForEach-Object { $_.Backend | Should -Be 'Ollama'; $_.FailoverLineLogged | Should -BeTrue }
        }

        It 'measures the time to fail over and to recover' {
            $report.TimeToFailoverSeconds | Should -BeGreaterOrEqual 0
            $report.TimeToRecoverSeconds | Should -BeGreaterThan 0
        }

        It 'writes the Markdown report and leaves no marker' {
            Get-Content (Join-Path $reportDir 'drill.md') -Raw | Should -Match '^# Failover drill report: Passed'
            $marker | Should -Not -Exist
        }

        It 'leaves the cloud serving' {
            (Invoke-AiRequest 'after' @common).Backend | Should -Be 'Cloud'
        }
    }

    Context 'through the local gateway, as an admin drills the applications'' path' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey $key
            $common = $f.Common
            $gateway = Start-AiGateway -Port 0 -CloudUri $f.Cloud.ChatUri -CloudApiKey $key -OllamaUri $f.Ollama.BaseUri
            $reportDir = Join-Path $stateDir 'gateway-reports'
            $report = Start-FailoverDrill -Gateway -BlockMethod Contingency -Duration 00:00:02 -Interval 00:00:00.4 -SkipAlertCheck @common -ReportPath (Join-Path $reportDir 'drill.html') -Confirm:$false -ProgressAction SilentlyContinue
            $cloudHitsAfter = Get-FakeServerHits $f.Cloud
        }
        AfterAll {
            Stop-AiGateway -Confirm:$false | Out-Null
            $f | Stop-FailoverFixture
        }

        It 'passes, with the gateway named in the report' {
            $report.Outcome | Should -Be 'Passed' -Because ($report.Failures -join '; ')
            ($report.Steps.Name -join ',') | Should -Be 'Preflight,Block,Failover,Alert,Unblock,Recovery'
            $report.Gateway | Should -Be $gateway.Url
            ($report | Out-String -Width 200) | Should -Match 'Gateway\s+: http://127\.0\.0\.1:\d+: failed over in [\d.]+ s, recovered in [\d.]+ s'
            ($report.Probes | Out-String -Width 200) | Should -Match '(?m)^\s*\d+\s+Failover\s+Gateway\s+'
        }

        It 'sends every prompt probe both ways; through the gateway Ollama serves during the block, for the contingency' {
            $during = @($report.Probes | Where-Object Phase -eq 'Failover')
            $viaGateway = @($during | Where-Object Path -eq 'Gateway')
            $viaGateway.Count | Should -BeGreaterOrEqual 3
            @($during | Where-Object Path -eq 'InProcess').Count | Should -Be $viaGateway.Count
            $viaGateway | ForEach-Object { $_.Backend | Should -Be 'Ollama'; $_.FailoverReason | Should -Be 'Contingency'; $_.Passed | Should -BeTrue; $_.RequestId | Should -Match '^[0-9a-f]{32}$' }
        }

        It 'sees the gateway serve from the cloud again after the block' {
            @($report.Probes | Where-Object { $_.Phase -eq 'Recovery' -and $_.Path -eq 'Gateway' -and $_.Backend -eq 'Cloud' }).Count | Should -Be 1
            $report.GatewayTimeToRecoverSeconds | Should -BeGreaterOrEqual 0
            (Get-AiGateway).Failovers | Should -BeGreaterOrEqual 3
        }

        It 'leaves no contingency and no marker behind' {
            Get-AiContingency | Where-Object Workflow -eq 'FailoverDrill' | Should -BeNullOrEmpty
            $marker | Should -Not -Exist
        }

        It 'writes the path into the HTML report and the probes export to CSV with it' {
            $html = Get-Content (Join-Path $reportDir 'drill.html') -Raw
            $html | Should -Match '<th>Path</th>'
            $html | Should -Match 'class="probe ollama gateway"'
            $csv = Join-Path $reportDir 'probes.csv'
            $report.Probes | Export-Csv $csv -NoTypeInformation
            (Import-Csv $csv | Where-Object { $_.Path -eq 'Gateway' -and $_.Phase -eq 'Failover' }).Count | Should -BeGreaterOrEqual 3
        }

        It 'refuses a wrong token before anything is blocked (GatewayTokenRejected)' {
            $wrong = ConvertTo-SecureString -String 'oc_wrong_token_for_this_gateway_000000' -AsPlainText -Force
            $e = { Start-FailoverDrill -GatewayToken $wrong -BlockMethod Contingency -Duration 00:00:02 -SkipAlertCheck @common -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'GatewayTokenRejected,OllamaContinuity.Commands.StartFailoverDrillCommand' -PassThru
            $e.CategoryInfo.Category | Should -Be 'AuthenticationError'
            "$e $($e.ErrorDetails.RecommendedAction)" | Should -Not -Match 'oc_wrong_token'
            Get-FakeServerHits $f.Cloud | Should -Be $cloudHitsAfter
            $marker | Should -Not -Exist
        }

        It 'refuses a simulated block with -Gateway (GatewayNeedsSharedBlock)' {
            { Start-FailoverDrill -Gateway -Duration 00:00:02 -SkipAlertCheck @common -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'GatewayNeedsSharedBlock,OllamaContinuity.Commands.StartFailoverDrillCommand'
        }

        It 'says so when no gateway is running (GatewayNotRunning)' {
            Stop-AiGateway -Confirm:$false | Out-Null
            { Start-FailoverDrill -Gateway -BlockMethod Contingency -Duration 00:00:02 -SkipAlertCheck @common -Confirm:$false -ErrorAction Stop } |
                Should -Throw -ErrorId 'GatewayNotRunning,OllamaContinuity.Commands.StartFailoverDrillCommand'
            Get-FakeServerHits $f.Cloud | Should -Be $cloudHitsAfter
        }
    }

    Context 'reports in every format' {
        BeforeAll {
            $f = Start-FailoverFixture -CloudFault 'status:503' -ApiKey $key
            $common = $f.Common
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'a drill that cannot start writes a <_> report and DrillNotStarted' -ForEach 'json', 'html', 'md' {
            $path = Join-Path $stateDir "notstarted.$_"
            $r = Start-FailoverDrill -Duration 00:00:02 -SkipAlertCheck @common -ReportPath $path -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
            $r.Outcome | Should -Be 'NotStarted'
            $err[0].FullyQualifiedErrorId | Should -Be 'DrillNotStarted,OllamaContinuity.Commands.StartFailoverDrillCommand'
            $text = Get-Content $path -Raw
            switch ($_) {
                'json' { ($text | ConvertFrom-Json).outcome | Should -Be 'NotStarted' }
                'html' { $text | Should -Match '<!DOCTYPE html>' }
                'md' { $text | Should -Match '# Failover drill report: NotStarted' }
            }
        }
    }

    Context 'safety' {
        It '-WhatIf with -BlockMethod Firewall prints the plan and changes nothing' {
            $f = Start-FailoverFixture -ApiKey $key
            try {
                $c = $f.Common
                Start-FailoverDrill -BlockMethod Firewall @c -WhatIf | Should -BeNullOrEmpty
                Get-FakeServerHits $f.Cloud | Should -Be 0
                $marker | Should -Not -Exist
            }
            finally { $f | Stop-FailoverFixture }
        }

        It 'Stop-FailoverDrill removes a simulated block marker left by a dead process' {
            New-Item -ItemType Directory -Force (Split-Path $marker) | Out-Null
            @{ drillId = 'dead'; method = 'Simulated'; cloudEndpoint = 'https://api.openai.com/v1/chat/completions'; blockedOrigin = 'https://api.openai.com'; processId = -1; startedAt = (Get-Date).ToString('o') } |
                ConvertTo-Json | Set-Content $marker
            $r = Stop-FailoverDrill -Confirm:$false
            $r.Found | Should -BeTrue
            $r.Removed | Should -BeTrue
            $marker | Should -Not -Exist
            (Stop-FailoverDrill -Confirm:$false).Found | Should -BeFalse
        }

        It 'Stop-FailoverDrill finds another administrator''s marker in the machine-wide location and says whose drill it was' {
            $machine = Join-Path $stateDir 'Machine/drill-block.json'
            New-Item -ItemType Directory -Force (Split-Path $machine) | Out-Null
            @{ drillId = 'bobs'; method = 'Simulated'; cloudEndpoint = 'https://api.openai.com/v1/chat/completions'; blockedOrigin = 'https://api.openai.com'; processId = 4242; user = 'bob'; startedAt = (Get-Date).ToString('o') } |
                ConvertTo-Json | Set-Content $machine
            $r = Stop-FailoverDrill -Confirm:$false -Verbose 4>&1
            $result = $r | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            $result.Found | Should -BeTrue
            $result.Removed | Should -BeTrue
            $result.Owner | Should -Be 'bob (process 4242)'
            $result.Detail | Should -Match 'drill bobs by bob'
            ($r | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | Out-String) | Should -Match 'belonged to bob'
            $machine | Should -Not -Exist
        }

        It 'SIGTERM to a child pwsh running a drill removes the block and its marker before the process ends' -Skip:$IsWindows {
            $f = Start-FailoverFixture -ApiKey $key
            $childState = Join-Path $stateDir ('child-' + [guid]::NewGuid().ToString('n'))
            $module = Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1'
            $c = $f.Common
            $command = "Import-Module '$module'; " +
                "`$k = ConvertTo-SecureString -String 'sk-PESTER-DRILL-93be07' -AsPlainText -Force; " +
                "Start-FailoverDrill -Duration 00:01:00 -Interval 00:00:00.5 -SkipAlertCheck -RecoveryTimeout 00:00:05 -CloudUri '$($c.CloudUri)' -CloudApiKey `$k -OllamaUri '$($c.OllamaUri)' -LogPath '$($c.LogPath)' -Confirm:`$false -ProgressAction SilentlyContinue"
            $psi = [System.Diagnostics.ProcessStartInfo]::new((Join-Path $PSHOME 'pwsh'))
            foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $command) { $psi.ArgumentList.Add($a) }
            $psi.Environment['OLLAMACONTINUITY_STATE_DIR'] = $childState
            $psi.RedirectStandardOutput = $true
            $psi.RedirectStandardError = $true
            $psi.UseShellExecute = $false
            $child = [System.Diagnostics.Process]::Start($psi)
            $out = $child.StandardOutput.ReadToEndAsync()
            $err = $child.StandardError.ReadToEndAsync()
            try {
                $markers = (Join-Path $childState 'Machine/drill-block.json'), (Join-Path $childState 'User/drill-block.json')
                $deadline = (Get-Date).AddSeconds(60)
                while (-not ($markers | Where-Object { Test-Path $_ }) -and -not $child.HasExited -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
                $active = $markers | Where-Object { Test-Path $_ } | Select-Object -First 1
                $active | Should -Not -BeNullOrEmpty -Because ("the child drill should have blocked the cloud: " + ($child.HasExited ? $out.Result + $err.Result : 'still running'))
                Start-Sleep -Milliseconds 300
                & kill -TERM $child.Id
                $child.WaitForExit(20000) | Should -BeTrue
                $active | Should -Not -Exist
            }
            finally {
                if (-not $child.HasExited) { $child.Kill($true) }
                $f | Stop-FailoverFixture
            }
        }

        It 'Start-FailoverDrill refuses a cloud endpoint whose IPv4 host System.Uri reads as octal' {
            $f = Start-FailoverFixture -ApiKey $key
            try {
                $c = $f.Common.Clone()
                $c['CloudUri'] = 'http://0127.0.0.1:{0}/v1/chat/completions' -f ([uri]$f.Cloud.BaseUri).Port
                { Start-FailoverDrill -BlockMethod Firewall @c -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidCloudEndpoint,OllamaContinuity.Commands.StartFailoverDrillCommand'
                Get-FakeServerHits $f.Cloud | Should -Be 0
            }
            finally { $f | Stop-FailoverFixture }
        }
    }
}
