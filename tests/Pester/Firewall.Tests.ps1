#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# The firewall cmdlets with the engine's command runner replaced by a scripted recording runner, so that no
# firewall tool runs on the test host. The engine lives in the module's own AssemblyLoadContext, which type
# literals do not search: its types are reached through the AppDomain and used as $type::Member.
# The last Context runs nftables for real inside a network namespace it creates (Linux, root); it is skipped,
# visibly, anywhere else.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')

    # Any call that fails validation loads the engine without running anything.
    try { Set-OllamaFirewallRule -AllowFrom 'load;engine' -ErrorAction Stop } catch { }
    $script:engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' } | Select-Object -First 1
    $script:envType = $engine.GetType('OllamaContinuity.Firewall.FirewallEnvironment', $true)
    $script:scriptedType = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)
    $script:processType = $engine.GetType('OllamaContinuity.Native.ProcessCommandRunner', $true)

    function Use-ScriptedRunner {
        # Installs a new scripted runner (answers: @( @(prefix, exitCode, stdout, stderr), ... )) and returns it.
        param([object[]] $Answers = @())
        $runner = $script:scriptedType::new()
        foreach ($a in $Answers) { $null = $runner.Answer($a[0], $a[1], ($a.Count -gt 2 ? $a[2] : ''), ($a.Count -gt 3 ? $a[3] : '')) }
        $fe = $script:envType::new()
        $fe.Runner = $runner
        $fe.Platform = 'Linux'
        $fe.NftablesIncludeDirectory = '/etc/nftables.d'
        $script:envType::Default = $fe
        if ($script:envType::Default.Runner -ne $runner) { throw 'The scripted runner is not installed; refusing to go on.' }
        $runner
    }

    function Get-WhatIfText {
        param([scriptblock] $Script)
        $file = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-fw-whatif-{0}.txt" -f [guid]::NewGuid().ToString('n'))
        Start-Transcript -Path $file -UseMinimalHeader | Out-Null
        try { & $Script } finally { Stop-Transcript | Out-Null }
        $text = Get-Content -Raw $file
        Remove-Item $file
        $text
    }

    $script:nftAbsent = @(@('nft -j list', 1, '', 'Error: No such file or directory'), @('cat', 1))
    $script:reads = '^(nft -j list|nft list|cat) '
}

AfterAll {
    # Leave a recording runner installed: nothing later in this session can reach a real firewall by accident.
    if ($script:envType) { $null = Use-ScriptedRunner }
}

Describe 'Firewall cmdlets' {
    Context 'module surface' {
        It '<_> is exported with its output type, -Port/-Backend validation and help with examples' -ForEach 'Set-OllamaFirewallRule', 'Get-OllamaFirewallRule', 'Remove-OllamaFirewallRule' {
            $cmd = Get-Command $_ -Module OllamaContinuity
            $cmd.CommandType | Should -Be 'Cmdlet'
            $cmd.OutputType.Name | Should -Contain 'OllamaContinuity.Firewall.FirewallRuleInfo'
            $cmd.Parameters['Backend'].Attributes.ValidValues | Should -Be @('Auto', 'Ufw', 'Firewalld', 'Nftables', 'Iptables', 'WindowsFirewall', 'Pf')
            $cmd.Parameters['Port'].Attributes.MinRange | Should -Contain 1
            @((Get-Help $_ -Full).examples.example).Count | Should -BeGreaterOrEqual 3
        }

        It 'Set and Remove ask before changing the firewall (ConfirmImpact High)' {
            foreach ($name in 'Set-OllamaFirewallRule', 'Remove-OllamaFirewallRule') {
                $attr = (Get-Command $name).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
                $attr.SupportsShouldProcess | Should -BeTrue
                $attr.ConfirmImpact | Should -Be 'High'
            }
        }

        It 'Set takes -AllowFrom from the pipeline' {
            (Get-Command Set-OllamaFirewallRule).Parameters['AllowFrom'].Attributes.ValueFromPipeline | Should -Contain $true
        }
    }

    Context 'input validation, before any process starts' {
        It 'rejects <Value> with <Id>' -ForEach @(
            @{ Value = '10.0.0.0/8; rm -rf /'; Id = 'InvalidAllowFrom' }
            @{ Value = '$(id)'; Id = 'InvalidAllowFrom' }
            @{ Value = '10.0.0.0/33'; Id = 'InvalidAllowFrom' }
            @{ Value = 'ollama.example.com'; Id = 'InvalidAllowFrom' }
            @{ Value = '::/0'; Id = 'AllowFromEverywhere' }
            @{ Value = '0.0.0.0/0'; Id = 'AllowFromEverywhere' }
            @{ Value = ''; Id = 'EmptyAllowFrom' }
            @{ Value = '192.168.1.10/24'; Id = 'AllowFromHostBits' }
        ) {
            $runner = Use-ScriptedRunner
            { '192.168.1.0/24', $Value | Set-OllamaFirewallRule -Confirm:$false } |
                Should -Throw -ErrorId "$Id,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand"
            $runner.Commands.Count | Should -Be 0
        }

        It 'refuses <Value> (a leading-zero octet is ambiguous: octal to some tools) with InvalidAllowFrom' -ForEach @(
            @{ Value = '010.010.010.010' }
            @{ Value = '192.168.010.0/24' }
            @{ Value = '10.1' }
        ) {
            $runner = Use-ScriptedRunner
            { Set-OllamaFirewallRule -AllowFrom $Value -Confirm:$false } |
                Should -Throw -ErrorId 'InvalidAllowFrom,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
            $runner.Commands.Count | Should -Be 0
        }

        It 'refuses networks that together cover a whole family (<Value>) without -Force' -ForEach @(
            @{ Value = @('0.0.0.0/1', '128.0.0.0/1') }
            @{ Value = @('::/1', '8000::/1') }
        ) {
            $runner = Use-ScriptedRunner
            { Set-OllamaFirewallRule -AllowFrom $Value -Confirm:$false } |
                Should -Throw -ErrorId 'AllowFromEverywhere,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
            $runner.Commands.Count | Should -Be 0
        }

        It 'refuses more sources than ufw takes before any ufw call, and more than the module takes at all' {
            $runner = Use-ScriptedRunner
            $hosts = 0..100 | ForEach-Object { "10.0.$([int][math]::Floor($_ / 256)).$($_ % 256)" }
            { Set-OllamaFirewallRule -AllowFrom $hosts -Backend Ufw -Confirm:$false } |
                Should -Throw -ErrorId 'AllowFromTooMany,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
            $runner.Commands.Count | Should -Be 0
            $many = 0..10000 | ForEach-Object { "10.$([int][math]::Floor($_ / 65536)).$([int][math]::Floor($_ / 256) % 256).$($_ % 256)" }
            { Set-OllamaFirewallRule -AllowFrom $many -Backend Nftables -Confirm:$false } |
                Should -Throw -ErrorId 'AllowFromTooMany,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
            $runner.Commands.Count | Should -Be 0
        }

        It 'refuses a port out of range' {
            { Set-OllamaFirewallRule -AllowFrom 10.0.0.0/8 -Port 0 -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
        }
    }

    Context '-WhatIf' {
        It 'prints every command in order and runs only read-only queries' {
            $runner = Use-ScriptedRunner -Answers $nftAbsent
            $text = Get-WhatIfText { Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24, fd00::/64 -Backend Nftables -WhatIf }
            $positions = '1. nft -c -f -', '2. nft -f -', '3. mkdir -p /etc/nftables.d', '4. tee /etc/nftables.d/ollama-guard-11434.nft' |
                ForEach-Object { $text.IndexOf($_, [System.StringComparison]::Ordinal) }
            $positions | Should -Not -Contain -1
            ($positions | Sort-Object) | Should -Be $positions
            $runner.CommandLines | ForEach-Object { $_ | Should -Match $reads }
        }
    }

    Context 'Get after Set, and idempotency' {
        It 'applies, reads back, and a second identical run changes nothing' {
            $runner = Use-ScriptedRunner -Answers $nftAbsent
            $set = Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24, fd00::/64 -Backend Nftables -Confirm:$false
            $set.Changed | Should -BeTrue
            $set.Commands.Count | Should -Be 4
            $ruleset = ($runner.Commands | Where-Object FileName -eq 'tee').StandardInput

            # The firewall now holds the table (as nft -j prints it) and the include file the same ruleset.
            $json = '{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[{"prefix":{"addr":"fd00::","len":64}}]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}'
            $runner = Use-ScriptedRunner -Answers @(@('nft -j list', 0, $json), @('cat', 0, $ruleset))

            $got = Get-OllamaFirewallRule -Backend Nftables
            $got.AllowFrom | Should -Be @('10.8.0.0/24', 'fd00::/64')
            $got.Active | Should -BeTrue

            $again = Set-OllamaFirewallRule -AllowFrom fd00::/64, 10.8.0.0/24 -Backend Nftables -Confirm:$false
            $again.Changed | Should -BeFalse
            $again.Commands | Should -BeNullOrEmpty
            $runner.CommandLines | ForEach-Object { $_ | Should -Match $reads }
        }

        It 'a failing tool rolls back and stops with FirewallCommandFailed' {
            $runner = Use-ScriptedRunner -Answers ($nftAbsent + , @('tee', 1, '', 'tee: Read-only file system'))
            { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Confirm:$false } |
                Should -Throw -ErrorId 'FirewallCommandFailed,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
            $runner.CommandLines | Should -Contain 'nft delete table inet ollama_guard_11434'
        }

        It 'no firewall found is FirewallBackendNotFound' {
            $null = Use-ScriptedRunner -Answers @(, @('', 127))
            { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Confirm:$false } |
                Should -Throw -ErrorId 'FirewallBackendNotFound,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand'
        }
    }

    Context 'Windows Defender Firewall through the NetSecurity cmdlets (stand-in functions in this session)' {
        BeforeAll {
            # The process runner points at a program that does not exist: nothing can start a real tool here.
            $noProcess = $script:processType::new()
            $noProcess.Prefix = [string[]]@('/nonexistent/oc-no-process-may-start')
            $fe = $script:envType::new()
            $fe.Runner = $noProcess
            $fe.Platform = 'Windows'
            $script:envType::Default = $fe
            . (Join-Path $PSScriptRoot 'FakeNetSecurity.ps1')
            Add-FakeFirewallRule -Name 'OpenOllama' -LocalPort 11434
            Add-FakeFirewallRule -Name 'TCP Query User{A1}C:\ollama\ollama.exe' -Program 'C:\ollama\ollama.exe'
            Add-FakeFirewallRule -Name 'RDP' -Group 'Remote Desktop' -LocalPort 3389
            function Get-FakeRule([string] $Name) { $global:FakeNetSecurity.Rules | Where-Object Name -eq $Name }
        }
        AfterAll {
            $null = Use-ScriptedRunner
            # The stand-ins are global: remove them so they never shadow the real NetSecurity cmdlets later.
            Get-ChildItem Function: | Where-Object { $_.Name -match '^((Get|New|Set|Remove)-NetFirewall\w+|Add-FakeFirewallRule|ConvertTo-FakeWindowsAddress|New-FakeError)$' } | Remove-Item
            Remove-Variable -Name FakeNetSecurity -Scope Global -ErrorAction SilentlyContinue
        }

        It 'adds one Allow rule scoped to the sources, disables the other openers, and never a Block rule' {
            $r = Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24, fd00::/64 -Confirm:$false
            $r.Backend | Should -Be 'WindowsFirewall'
            $r.Changed | Should -BeTrue
            $r.Active | Should -BeTrue
            (Get-FakeRule 'OllamaContinuity-Ollama-TCP-11434').RemoteAddress | Should -Be @('192.168.1.0/24', 'fd00::/64')
            (Get-FakeRule 'OpenOllama').Enabled | Should -Be 'False'
            (Get-FakeRule 'TCP Query User{A1}C:\ollama\ollama.exe').Enabled | Should -Be 'False'
            (Get-FakeRule 'RDP').Enabled | Should -Be 'True'
            $global:FakeNetSecurity.Rules | Where-Object Action -eq 'Block' | Should -BeNullOrEmpty
        }

        It 'changes nothing the second time' {
            $again = Set-OllamaFirewallRule -AllowFrom fd00::/64, 192.168.1.0/24 -Confirm:$false
            $again.Changed | Should -BeFalse
            $again.Commands | Should -BeNullOrEmpty
        }

        It 'Remove deletes its rule and re-enables exactly what it had disabled' {
            (Remove-OllamaFirewallRule -Confirm:$false).Changed | Should -BeTrue
            Get-FakeRule 'OllamaContinuity-Ollama-TCP-11434' | Should -BeNullOrEmpty
            (Get-FakeRule 'OpenOllama').Enabled | Should -Be 'True'
            (Get-FakeRule 'TCP Query User{A1}C:\ollama\ollama.exe').Enabled | Should -Be 'True'
        }
    }

    Context 'nftables for real in a network namespace (Linux, root)' -Skip:(-not $IsLinux -or (& id -u) -ne '0' -or -not (Get-Command nft -ErrorAction SilentlyContinue)) {
        BeforeAll {
            $script:ns = 'ocpester{0}' -f $PID
            & ip netns add $ns
            $script:hostBefore = (& nft list ruleset) -join "`n"
            $script:include = Join-Path ([System.IO.Path]::GetTempPath()) "oc-pester-nft-$PID"
            $real = $script:processType::new()
            $real.Prefix = [string[]]@('ip', 'netns', 'exec', $ns)
            $fe = $script:envType::new()
            $fe.Runner = $real
            $fe.Platform = 'Linux'
            $fe.NftablesIncludeDirectory = $include
            $script:envType::Default = $fe
        }
        AfterAll {
            $null = Use-ScriptedRunner
            & ip netns del $ns
            Remove-Item -Recurse -Force $include -ErrorAction SilentlyContinue
            ((& nft list ruleset) -join "`n") | Should -Be $hostBefore
        }

        It 'applies, is idempotent, converges and removes' {
            $set = Set-OllamaFirewallRule -AllowFrom 10.231.1.0/24, fd31:1::/64 -Backend Nftables -Confirm:$false
            $set.Changed | Should -BeTrue
            $set.Active | Should -BeTrue
            (& ip netns exec $ns nft list table inet ollama_guard_11434) -join "`n" | Should -Match '10\.231\.1\.0/24'

            (Set-OllamaFirewallRule -AllowFrom 10.231.1.0/24, fd31:1::/64 -Backend Nftables -Confirm:$false).Changed | Should -BeFalse

            $changed = Set-OllamaFirewallRule -AllowFrom 10.231.2.2 -Backend Nftables -Confirm:$false
            $changed.AllowFrom | Should -Be @('10.231.2.2')
            (Get-OllamaFirewallRule -Backend Nftables).AllowFrom | Should -Be @('10.231.2.2')

            $removed = Remove-OllamaFirewallRule -Backend Nftables -Confirm:$false
            $removed.Changed | Should -BeTrue
            $removed.Present | Should -BeFalse
            (Remove-OllamaFirewallRule -Backend Nftables -Confirm:$false).Changed | Should -BeFalse
        }
    }
}
