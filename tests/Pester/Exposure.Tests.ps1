#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Test-OllamaExposure: the local audit of staged trees (-Root in TestDrive) and the network probe of fake servers on
# 127.0.0.1 only (tests/FakeServer child processes). No other address is ever probed.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:cmdId = 'OllamaContinuity.Commands.TestOllamaExposureCommand'

    function New-AuditRoot {
        param([int] $Port, [string] $OllamaHost = '0.0.0.0', [string] $Origins = '*', [string] $ListenHex = '00000000')
        $root = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory -Path (Join-Path $root 'etc/systemd/system'), (Join-Path $root 'proc/net') -Force | Out-Null
        Set-Content -Path (Join-Path $root 'etc/systemd/system/ollama.service') -NoNewline -Value (
            "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama`nEnvironment=`"OLLAMA_HOST=$OllamaHost`" `"OLLAMA_ORIGINS=$Origins`"`n")
        Set-Content -Path (Join-Path $root 'proc/net/tcp') -NoNewline -Value (
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode`n" +
            ('   0: {0}:{1:X4} 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0' -f $ListenHex, $Port) + "`n")
        $root
    }

    $script:ollama = Start-FakeServer -Api Ollama -Name exposed
    $script:other = Start-FakeServer -Api OpenAI -Name notollama
    $script:ollamaPort = ([uri]$ollama.BaseUri).Port
    $script:otherPort = ([uri]$other.BaseUri).Port
}

AfterAll {
    $ollama, $other | Stop-FakeServer
}

Describe 'Test-OllamaExposure' {
    Context 'module surface' {
        It 'is exported with a local and a network parameter set' {
            $cmd = Get-Command Test-OllamaExposure -Module OllamaContinuity
            $cmd.ParameterSets.Name | Should -Be @('Local', 'Network')
            $cmd.DefaultParameterSet | Should -Be 'Local'
            $cmd.OutputType.Name | Should -Contain 'OllamaContinuity.Exposure.ExposureFinding'
            $cmd.Parameters['Target'].Attributes.ValueFromPipeline | Should -Contain $true
        }

        It 'has help with at least three examples' {
            @((Get-Help Test-OllamaExposure -Examples).examples.example).Count | Should -BeGreaterOrEqual 3
        }
    }

    Context 'local audit of a staged Linux tree' -Skip:(-not $IsLinux) {
        BeforeAll {
            $exposedRoot = New-AuditRoot -Port $ollamaPort
            $hardenedRoot = New-AuditRoot -Port 11434 -OllamaHost '127.0.0.1:11434' -Origins 'https://app.example.com' -ListenHex '0100007F'
        }

        It 'gives one finding per checklist item' {
            $f = Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort
            $f.Check | Should -Be @('BindAddress', 'Firewall', 'Origins', 'WebUI', 'ServiceUser', 'Authentication', 'Logs', 'DiskEncryption')
            $f.Target | Select-Object -Unique | Should -Be $exposedRoot
        }

        It 'fails the unauthenticated API with the models it lists, and names the fix' {
            $auth = Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort | Where-Object Check -eq 'Authentication'
            $auth.Status | Should -Be 'Fail'
            $auth.Models | Should -Be 'llama3.1:8b'
            $auth.Remediation | Should -Be 'Set-OllamaHardening -BindAddress 127.0.0.1:11434 -Restart'
        }

        It '-Quiet returns a single boolean meaning no Fail' {
            $q = Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort -Quiet
            $q | Should -BeOfType [bool]
            @($q).Count | Should -Be 1
            $q | Should -BeFalse
            Test-OllamaExposure -Root $hardenedRoot -Quiet | Should -BeTrue
        }

        It 'pipes into Export-Csv as flat rows' {
            $csv = Join-Path $TestDrive 'audit.csv'
            Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort | Export-Csv -Path $csv -NoTypeInformation
            $rows = Import-Csv $csv
            $rows.Count | Should -Be 8
            $rows[0].PSObject.Properties.Name | Should -Contain 'Remediation'
            ($rows | Where-Object Check -eq 'Origins').Status | Should -Be 'Fail'
            Get-Content -Raw $csv | Should -Not -Match 'System\.(String|Collections)'
        }

        It 'converts to JSON and HTML' {
            $json = Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort | ConvertTo-Json | ConvertFrom-Json
            ($json | Where-Object Check -eq 'Authentication').Status | Should -Be 'Fail'
            (Test-OllamaExposure -Root $exposedRoot -Port $ollamaPort | ConvertTo-Html | Out-String) | Should -Match '<td>Authentication</td>'
        }

        It 'groups the default table by Target' {
            (Test-OllamaExposure -Root $hardenedRoot | Out-String) | Should -Match ('Target: ' + [regex]::Escape($hardenedRoot))
        }

        It 'refuses a root that does not exist' {
            { Test-OllamaExposure -Root (Join-Path $TestDrive 'missing') } | Should -Throw -ErrorId "RootNotFound,$cmdId"
        }
    }

    Context 'network probe on loopback' {
        It 'reports the Ollama fake as an exposed API with version and models' {
            $f = Test-OllamaExposure -Target 127.0.0.1 -Port $ollamaPort -TimeoutMs 1000
            $f.Status | Should -Be 'Fail'
            $f.Target | Should -Be '127.0.0.1'
            $f.Version | Should -Be '0.33.0'
            $f.Models | Should -Be 'llama3.1:8b'
        }

        It 'does not report a server that is not Ollama' {
            Test-OllamaExposure -Target 127.0.0.1 -Port $otherPort -TimeoutMs 1000 | Should -BeNullOrEmpty
            $row = Test-OllamaExposure -Target 127.0.0.1 -Port $otherPort -TimeoutMs 1000 -IncludeClosed
            $row.Status | Should -Be 'Pass'
            $row.Detail | Should -Match 'without the Ollama banner'
        }

        It '-Quiet answers for a scheduled task' {
            Test-OllamaExposure -Target 127.0.0.1 -Port $ollamaPort -TimeoutMs 1000 -Quiet | Should -BeFalse
            Test-OllamaExposure -Target 127.0.0.1 -Port $otherPort -TimeoutMs 1000 -Quiet | Should -BeTrue
        }

        It 'takes targets from the pipeline and exports them' {
            $csv = Join-Path $TestDrive 'scan.csv'
            '127.0.0.1', '127.0.0.0/30' | Test-OllamaExposure -Port $ollamaPort -TimeoutMs 1000 -IncludeClosed | Export-Csv -Path $csv -NoTypeInformation
            $rows = Import-Csv $csv
            $rows.Target | Should -Contain '127.0.0.1'
            ($rows | Where-Object Target -eq '127.0.0.1').Status | Should -Be 'Fail'
            ($rows | Where-Object Target -eq '127.0.0.2').Status | Should -Be 'Pass'
        }

        It 'refuses <Target> with <ErrorId> before probing' -ForEach @(
            @{ Target = '10.0.0.0/8'; ErrorId = 'TargetTooLarge' }
            @{ Target = '::/0'; ErrorId = 'TargetTooLarge' }
            @{ Target = '10.0.0.0/33'; ErrorId = 'InvalidTarget' }
            @{ Target = 'a;b'; ErrorId = 'InvalidTarget' }
            @{ Target = '012.0143.0.01'; ErrorId = 'InvalidTarget' }
            @{ Target = '192.168.010.0/24'; ErrorId = 'InvalidTarget' }
            @{ Target = '167772161'; ErrorId = 'InvalidTarget' }
        ) {
            { Test-OllamaExposure -Target $Target } | Should -Throw -ErrorId "$ErrorId,$cmdId"
        }
    }

    Context 'the OllamaContinuity gateway in front of Ollama' -Skip:(-not $IsLinux) {
        # The real gateway process (Start-AiGateway) on 127.0.0.1 with the Ollama fake behind it, audited as an admin
        # would: the live local audit finds it in /proc, the network probe recognises it. Its state lives in TestDrive.
        BeforeAll {
            $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
            $env:OLLAMACONTINUITY_STATE_DIR = Join-Path $TestDrive 'gateway-state'
            $key = ConvertTo-SecureString 'sk-pester-cloud' -AsPlainText -Force
            $script:gw = Start-AiGateway -Port 0 -CloudUri ($other.BaseUri.ToString().TrimEnd('/') + '/v1/chat/completions') -CloudApiKey $key -OllamaUri $ollama.BaseUri
        }

        AfterAll {
            Stop-AiGateway -Confirm:$false
            $env:OLLAMACONTINUITY_STATE_DIR = $savedStateDir
        }

        It 'the local audit finds the running gateway and shows that it asks for a client token' {
            $f = Test-OllamaExposure | Where-Object { $_.Check -like 'Gateway*' -and $_.Port -eq $gw.Port }
            $f.Check | Should -Be @('GatewayBind', 'GatewayAuth', 'GatewayFirewall')
            ($f | Where-Object Check -eq 'GatewayBind').Detail | Should -Match "loopback only \(127\.0\.0\.1:$($gw.Port); process $($gw.ProcessId)"
            ($f | Where-Object Check -eq 'GatewayAuth').Status | Should -Be 'Pass'
            ($f | Where-Object Check -eq 'GatewayAuth').Detail | Should -Match 'answered HTTP 401'
            ($f | Where-Object Check -eq 'GatewayFirewall').Status | Should -Be 'NotApplicable'
        }

        It 'the gateway rows go into Export-Csv with the others' {
            $csv = Join-Path $TestDrive 'gateway-audit.csv'
            Test-OllamaExposure | Export-Csv -Path $csv -NoTypeInformation
            $row = Import-Csv $csv | Where-Object { $_.Check -eq 'GatewayAuth' -and $_.Port -eq "$($gw.Port)" }
            $row.Status | Should -Be 'Pass'
        }

        It 'the network probe reports it as a gateway that asks for a token, not as an exposed Ollama' {
            $f = Test-OllamaExposure -Target 127.0.0.1 -Port $gw.Port -TimeoutMs 2000
            $f.Check | Should -Be 'NetworkExposure'
            $f.Status | Should -Be 'Pass'
            $f.Detail | Should -Match 'OllamaContinuity gateway answers on 127\.0\.0\.1:\d+ and asks for a client token'
            $f.Models | Should -BeNullOrEmpty
            Test-OllamaExposure -Target 127.0.0.1 -Port $gw.Port -TimeoutMs 2000 -Quiet | Should -BeTrue
        }

        It 'a stale gateway.json (its process gone) credits nothing' {
            Stop-AiGateway -Confirm:$false
            $gone = Start-Process -FilePath 'true' -PassThru
            $gone.WaitForExit()
            $state = Join-Path $env:OLLAMACONTINUITY_STATE_DIR 'User/gateway.json'
            New-Item -ItemType Directory -Path (Split-Path $state) -Force | Out-Null
            Set-Content -Path $state -Value ('{{"pid":{0},"url":"http://127.0.0.1:{1}","bind":"127.0.0.1","port":{1}}}' -f $gone.Id, $ollamaPort)
            $f = Test-OllamaExposure | Where-Object { $_.Check -like 'Gateway*' -and $_.Port -eq $ollamaPort }
            $f.Check | Should -Be 'GatewayBind'
            $f.Status | Should -Be 'NotApplicable'
            $f.Detail | Should -Match 'stale state file, nothing is credited'
        }
    }

    Context 'a hostile Ollama on loopback (escape sequences and CR/LF in its answers)' {
        BeforeAll {
            # A raw HTTP server on 127.0.0.1 in a thread job: the banner, then a version and model names that would
            # retitle the terminal, erase a line and print a green "Pass", write the clipboard, or forge table rows.
            $script:hostile = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
            $hostile.Start()
            $script:hostilePort = $hostile.LocalEndpoint.Port
            $script:hostileJob = Start-ThreadJob -ArgumentList $hostile -ScriptBlock {
                param($listener)
                while ($true) {
                    try { $client = $listener.AcceptTcpClient() } catch { return }
                    try {
                        $stream = $client.GetStream()
                        $reader = [System.IO.StreamReader]::new($stream, [System.Text.Encoding]::ASCII)
                        $line = $reader.ReadLine()
                        while ($reader.ReadLine()) { }
                        $body = if ($line -match '/api/version') { '{"version":"0.9.9\u001b]0;owned\u0007"}' }
                        elseif ($line -match '/api/tags') { '{"models":[{"name":"llama3\u001b[2K\u001b[1A\u001b[32mPass"},{"name":"x\r\n[Pass] NetworkExposure 10.0.0.1"},{"name":"\u001b]52;c;ZXZpbA==\u0007y"}]}' }
                        else { 'Ollama is running' }
                        $bytes = [System.Text.Encoding]::UTF8.GetBytes($body)
                        $head = [System.Text.Encoding]::ASCII.GetBytes("HTTP/1.1 200 OK`r`nContent-Type: application/json`r`nContent-Length: $($bytes.Length)`r`nConnection: close`r`n`r`n")
                        $stream.Write($head, 0, $head.Length)
                        $stream.Write($bytes, 0, $bytes.Length)
                    }
                    finally { $client.Dispose() }
                }
            }
        }

        AfterAll {
            $hostile.Stop()
            $hostileJob | Remove-Job -Force
        }

        It 'puts no control character into the finding, its table view or its CSV' {
            $f = Test-OllamaExposure -Target 127.0.0.1 -Port $hostilePort -TimeoutMs 2000
            $f.Status | Should -Be 'Fail'
            $f.Models | Should -Be 'llama3Pass, x  [Pass] NetworkExposure 10.0.0.1, y'
            $f.Version | Should -Be '0.9.9'
            foreach ($text in @($f.Models, $f.Version, $f.Detail, ($f | Format-Table -AutoSize | Out-String -Width 400), ($f | ConvertTo-Csv | Out-String))) {
                $text | Should -Not -Match '[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]'
            }
        }
    }
}