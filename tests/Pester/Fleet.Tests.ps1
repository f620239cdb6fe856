#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Fleet use: results that come back through serialization (Start-Job here; Invoke-Command -ComputerName gives the
# same Deserialized.* objects) keep a readable default view with a PSComputerName column, and export to one CSV/HTML
# report. A network scan of a fake Ollama on 127.0.0.1, a local audit of a staged tree and a simulated drill against
# fake servers, each run in a background job.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:manifest = (Resolve-Path (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')).Path
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-fleet-{0}" -f [guid]::NewGuid().ToString('n'))
    $script:ollama = Start-FakeServer -Api Ollama -Name fleet
    $script:port = ([uri]$ollama.BaseUri).Port
    $script:root = Join-Path $TestDrive 'host01'
    New-Item -ItemType Directory -Path (Join-Path $root 'etc/systemd/system') -Force | Out-Null
    Set-Content -Path (Join-Path $root 'etc/systemd/system/ollama.service') -NoNewline -Value "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama`nEnvironment=`"OLLAMA_HOST=127.0.0.1`"`n"

    function Invoke-InJob {
        # Runs a script block in a background job with the module imported and returns what comes back (deserialized).
        param([scriptblock] $Script, [object[]] $ArgumentList = @())
        $job = Start-Job -ScriptBlock {
            param($manifest, $stateDir, $script, $arguments)
            $env:OLLAMACONTINUITY_STATE_DIR = $stateDir
            Import-Module $manifest
            & ([scriptblock]::Create($script)) @arguments
        } -ArgumentList $manifest, $stateDir, $Script.ToString(), $ArgumentList
        $null = Wait-Job $job -Timeout 120
        $out = Receive-Job $job -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        Remove-Job $job -Force
        $out
    }
}

AfterAll {
    $ollama | Stop-FakeServer
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Results through Start-Job (as through remoting)' {
    Context 'a network scan' {
        BeforeAll {
            $scan = @(Invoke-InJob { param($p) Test-OllamaExposure -Target 127.0.0.1 -Port $p -TimeoutMs 2000 } -ArgumentList $port)
            $text = $scan | Out-String -Width 200
        }

        It 'comes back as deserialized findings with the computer name' {
            $scan.Count | Should -Be 1
            $scan[0].pstypenames[0] | Should -Be 'Deserialized.OllamaContinuity.Exposure.ExposureFinding'
            $scan[0].PSComputerName | Should -Be 'localhost'
            $scan[0].Status | Should -Be 'Fail'
        }

        It 'shows the module''s view with a PSComputerName column, not a property list' {
            $text | Should -Match '(?m)^PSComputerName\s+Status\s+Check\s+Port\s+Detail'
            $text | Should -Match "(?m)^localhost\s+Fail\s+NetworkExposure\s+$port\s"
            $text | Should -Not -Match 'RunspaceId'
        }
    }

    Context 'a local audit' {
        BeforeAll {
            $audit = @(Invoke-InJob { param($r) Test-OllamaExposure -Root $r } -ArgumentList $root)
            $text = $audit | Out-String -Width 200
        }

        It 'keeps one row per check with the computer name' {
            $audit.Count | Should -BeGreaterThan 4
            $audit.Check | Should -Contain 'BindAddress'
            $text | Should -Match '(?m)^PSComputerName\s+Status\s+Check'
            @($text -split "`n" | Where-Object { $_ -match '^localhost\s+(Pass|Fail|Warn|NotApplicable|Error)\s+\w+' }).Count | Should -Be $audit.Count
        }

        It 'goes into one CSV and one HTML report without type names' {
            $csv = Join-Path $TestDrive 'fleet.csv'
            $audit | Select-Object PSComputerName, Check, Status, Detail | Export-Csv -Path $csv -NoTypeInformation
            $rows = Import-Csv $csv
            $rows.Count | Should -Be $audit.Count
            $rows[0].PSComputerName | Should -Be 'localhost'
            Get-Content -Raw $csv | Should -Not -Match 'System\.[A-Z]|Deserialized\.'
            ($audit | ConvertTo-Html -Property PSComputerName, Check, Status, Detail | Out-String) | Should -Match '<td>localhost</td><td>BindAddress</td>'
        }
    }

    Context 'a drill report' {
        BeforeAll {
            $f = Start-FailoverFixture -ApiKey (ConvertTo-SecureString 'sk-PESTER-FLEET-0a9d' -AsPlainText -Force)
            $report = Invoke-InJob {
                param($cloudUri, $ollamaUri)
                $key = ConvertTo-SecureString 'sk-PESTER-FLEET-0a9d' -AsPlainText -Force
                Start-FailoverDrill -CloudUri $cloudUri -CloudApiKey $key -OllamaUri $ollamaUri -Duration 00:00:02 -Interval 00:00:00.5 -SkipAlertCheck -RecoveryTimeout 00:01:00 -Confirm:$false -ProgressAction SilentlyContinue
            } -ArgumentList $f.Cloud.ChatUri, $f.Ollama.BaseUri
            $text = $report | Out-String -Width 200
        }
        AfterAll { $f | Stop-FailoverFixture }

        It 'comes back as a deserialized report' {
            $report.pstypenames[0] | Should -Be 'Deserialized.OllamaContinuity.Drill.DrillReport'
            $report.Outcome | Should -Be 'Passed'
        }

        It 'shows the report''s list view with the computer name and readable steps' {
            $text | Should -Match '(?m)^PSComputerName\s+: localhost'
            $text | Should -Match '(?m)^Outcome\s+: Passed'
            $text | Should -Match '(?m)^Steps\s+: Preflight: Passed; Block: Passed; Failover: Passed'
            $text | Should -Match '(?m)^Probes\s+: \d+ passed, 0 failed'
            $text | Should -Not -Match 'System\.Collections|RunspaceId'
        }

        It 'exports to CSV without type names' {
            ($report | ConvertTo-Csv -NoTypeInformation) -join "`n" | Should -Not -Match 'System\.[A-Z]'
        }
    }
}
