#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# -Verbose tells the story of a scan, a firewall change and a drill, step by step: the engine reports through a
# callback, the cmdlet writes the lines. Fake servers on 127.0.0.1; the firewall through a recording runner.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $script:stateDir = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-narration-{0}" -f [guid]::NewGuid().ToString('n'))
    $env:OLLAMACONTINUITY_STATE_DIR = $script:stateDir

    function Get-VerboseLines {
        # Runs a script block with -Verbose on its command and returns only the verbose lines, as text.
        param([scriptblock] $Script)
        @(& $Script 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
    }
}

AfterAll {
    $env:OLLAMACONTINUITY_STATE_DIR = $script:savedStateDir
    Remove-Item -Recurse -Force $script:stateDir -ErrorAction SilentlyContinue
}

Describe 'Test-OllamaExposure -Target -Verbose' {
    BeforeAll {
        $ollama = Start-FakeServer -Api Ollama -Name narrated
        $port = ([uri]$ollama.BaseUri).Port
        # A port nobody listens on: bind, note the port, release it.
        $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start(); $closed = $l.LocalEndpoint.Port; $l.Stop()
    }
    AfterAll { $ollama | Stop-FakeServer }

    It 'says what it probes, the fate of each address and the scan rate' {
        $lines = Get-VerboseLines { Test-OllamaExposure -Target 127.0.0.1 -Port $port -Verbose }
        $lines.Count | Should -BeGreaterOrEqual 3
        $lines[0] | Should -Match "^Probing 1 address\(es\) from 127\.0\.0\.1 on TCP port $port"
        $lines | Should -Contain ($lines | Where-Object { $_ -match "^127\.0\.0\.1:$port`: Ollama \S+ answers without authentication, listing \d+ model\(s\) \[\d+ ms\]$" })
        $lines[-1] | Should -Match '^Probed 1 address\(es\) in [\d.]+ s \(\d+ addresses/s\): 1 unauthenticated Ollama API\(s\) found\.$'
        $lines[-2] | Should -Match '^Fates: 1 Ollama, 0 open without Ollama, 0 refused and 0 unreachable \(ended at once\), 0 silent \(waited the 2000 ms timeout\); 1 address\(es\) in \d+\.\d{3} s: \d+ addresses/s\.$'
    }

    It 'says why an address has no Ollama' {
        $lines = Get-VerboseLines { Test-OllamaExposure -Target 127.0.0.1 -Port $closed -Verbose -TimeoutMs 500 }
        ($lines -join "`n") | Should -Match "127\.0\.0\.1:$closed`: nothing answers \(.+\) \[\d+ ms\]"
        $lines[-1] | Should -Match ': 0 unauthenticated Ollama API\(s\) found\.$'
        $lines[-2] | Should -Match '^Fates: 0 Ollama, 0 open without Ollama, 1 refused and 0 unreachable \(ended at once\), 0 silent \(waited the 500 ms timeout\); 1 address\(es\) in \d+\.\d{3} s: \d+ addresses/s\.$'
    }

    It 'writes no verbose line without -Verbose' {
        (Get-VerboseLines { Test-OllamaExposure -Target 127.0.0.1 -Port $port }).Count | Should -Be 0
    }
}

Describe 'Set-OllamaFirewallRule -Verbose' {
    BeforeAll {
        try { Set-OllamaFirewallRule -AllowFrom 'load;engine' -ErrorAction Stop } catch { }
        $engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' } | Select-Object -First 1
        $envType = $engine.GetType('OllamaContinuity.Firewall.FirewallEnvironment', $true)
        $runnerType = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)
        function Use-Runner([object[]] $Answers) {
            $runner = $runnerType::new()
            foreach ($a in $Answers) { $null = $runner.Answer($a[0], $a[1], ($a.Count -gt 2 ? $a[2] : ''), '') }
            $fe = $envType::new(); $fe.Runner = $runner; $fe.Platform = 'Linux'; $fe.NftablesIncludeDirectory = '/etc/nftables.d'
            $envType::Default = $fe
            if ($envType::Default.Runner -ne $runner) { throw 'The recording runner is not installed; refusing to go on.' }
            $runner
        }
    }
    AfterAll { $fe = $envType::new(); $fe.Runner = $runnerType::new(); $envType::Default = $fe }

    It 'tells the detection, the state read, the plan, every command and the state read back' {
        $null = Use-Runner @(@('firewall-cmd', 252), @('ufw status', 0, 'Status: inactive'), @('nft list tables', 0, 'table inet filter'), @('nft -j list', 1), @('cat', 1), @('iptables -w -S', 0, '-P INPUT ACCEPT'))
        $lines = Get-VerboseLines { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Verbose -Confirm:$false | Out-Null }
        $text = $lines -join "`n"
        $text | Should -Match 'Firewall: Nftables, detected because an nftables ruleset is in force \(table inet filter\); ufw is installed but inactive\.'
        $text | Should -Match "Read nft list table inet ollama_guard_11434.*: the module's rule for TCP 11434 is absent\."
        $text | Should -Match 'Plan: 4 command\(s\) to allow TCP 11434 from 10\.8\.0\.0/24 and loopback only'
        @($lines | Where-Object { $_ -like 'Running: *' }).Count | Should -Be 4
        $lines[-1] | Should -Match '^Read back from nft list table inet ollama_guard_11434'
        $lines.Count | Should -BeGreaterOrEqual 8
    }

    It 'says the firewall was named, and that nothing needs changing' {
        $json = '{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}'
        # The include file holds what a first Set wrote.
        $first = Use-Runner @(@('nft -j list', 1), @('cat', 1))
        Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Confirm:$false | Out-Null
        $ruleset = ($first.Commands | Where-Object FileName -eq 'tee').StandardInput
        $null = Use-Runner @(@('nft -j list', 0, $json), @('cat', 0, $ruleset))
        $lines = Get-VerboseLines { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Verbose -Confirm:$false | Out-Null }
        $lines[0] | Should -Be 'Firewall: Nftables, as named with -Backend.'
        $lines[1] | Should -Match "the module's rule for TCP 11434 is in force, allowing 10\.8\.0\.0/24\.$"
        $lines[-1] | Should -Match 'nothing to change'
    }
}

Describe 'Start-FailoverDrill -Verbose' {
    BeforeAll {
        $f = Start-FailoverFixture -ApiKey (ConvertTo-SecureString 'sk-PESTER-NARRATE-77c1' -AsPlainText -Force)
        $common = $f.Common
        $lines = Get-VerboseLines { Start-FailoverDrill -Duration 00:00:01.5 -Interval 00:00:00.5 -SkipAlertCheck @common -RecoveryTimeout 00:01:00 -Confirm:$false -ProgressAction SilentlyContinue -Verbose | Out-Null }
        $text = $lines -join "`n"
    }
    AfterAll { $f | Stop-FailoverFixture }

    It 'starts with what the drill will do' {
        $text | Should -Match 'Drill \w+: Simulated block of http://127\.0\.0\.1:\d+/v1/chat/completions for 1\.5 s, probes every 0\.5 s'
    }

    It 'tells every step as it starts and ends, in order' {
        foreach ($step in 'Preflight', 'Block', 'Failover', 'Alert', 'Unblock', 'Recovery') {
            $text | Should -Match "Step $step`: started\."
            $text | Should -Match "Step $step`: (Passed|Skipped|Warning) after [\d.]+ s"
        }
        $text.IndexOf('Step Block: started.') | Should -BeLessThan $text.IndexOf('Step Failover: started.')
        $text.IndexOf('Step Unblock: started.') | Should -BeLessThan $text.IndexOf('Step Recovery: started.')
    }

    It 'tells each probe''s result' {
        $text | Should -Match "Probe #1 \(Preflight, in process, 'preflight-cloud'\): served by Cloud in \d+ ms, passed\."
        $text | Should -Match "Probe #\d+ \(Failover, in process, 'default'\): served by Ollama in \d+ ms \(failover reason \w+\), passed\."
        $text | Should -Match "Probe #\d+ \(Recovery, in process, 'default'\): served by Cloud"
    }

    It 'ends with the outcome and the timings' {
        $text | Should -Match 'Drill \w+: Passed \(time to fail over [\d.]+ s, time to recover [\d.]+ s\)\.'
        $lines.Count | Should -BeGreaterOrEqual 15
    }
}
