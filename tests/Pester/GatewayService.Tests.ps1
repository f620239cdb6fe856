#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Install-AiGateway and Uninstall-AiGateway as an admin drives them: -WhatIf first, then a staged image (-Root: real
# files and modes, no service manager command), the running gateway piped in, a CSV report, and the refusals. No
# service of this machine is touched: every live plan here runs with -WhatIf, every change under -Root.

BeforeAll {
    $script:manifest = (Resolve-Path (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')).Path
    Import-Module -Force $manifest
    $script:pwsh = Join-Path $PSHOME 'pwsh'
    $script:savedState = $env:OLLAMACONTINUITY_STATE_DIR
    $env:OLLAMACONTINUITY_STATE_DIR = Join-Path $TestDrive 'state'
    $script:key = ConvertTo-SecureString 'sk-pester-NOT-TO-BE-SHOWN-0123456789' -AsPlainText -Force

    # What a child pwsh prints (the -WhatIf lines go to the host, so a child's output is where they can be read).
    function Invoke-Child([string] $Script) {
        $code = "Import-Module '$manifest'; `$ProgressPreference = 'SilentlyContinue'; `$k = ConvertTo-SecureString 'sk-pester-NOT-TO-BE-SHOWN-0123456789' -AsPlainText -Force; $Script"
        & $pwsh -NoProfile -NonInteractive -Command $code *>&1 | Out-String -Width 400
    }
}

AfterAll {
    Stop-AiGateway -Confirm:$false -ErrorAction SilentlyContinue
    $env:OLLAMACONTINUITY_STATE_DIR = $savedState
}

Describe 'Install-AiGateway and Uninstall-AiGateway' {
    BeforeEach {
        $script:root = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory -Path $root | Out-Null
        $script:unit = Join-Path $root 'etc/systemd/system/ollamacontinuity-gateway.service'
        $script:envFile = Join-Path $root 'etc/ollamacontinuity/gateway.env'
        $script:tokens = Join-Path $root 'etc/ollamacontinuity/gateway-tokens.json'
    }

    It '-WhatIf names every file with its mode and content and every command, changes nothing, and never shows the key' {
        $text = Invoke-Child "Install-AiGateway -Root '$root' -CloudApiKey `$k -CloudUri 'https://api.example.test/v1/chat/completions?api-key=QUERYSECRET' -WhatIf -Verbose"
        $text | Should -Match 'What if: .*Create the client tokens file'
        $text | Should -Match 'Create gateway\.env \(mode 0600\)'
        $text | Should -Match "CLOUD_API_KEY='\(redacted\)'"
        $text | Should -Match 'Create ollamacontinuity-gateway\.service \(mode 0644\)'
        $text | Should -Match 'ProtectSystem=strict'
        $text | Should -Match 'systemctl daemon-reload; systemctl enable --now ollamacontinuity-gateway\.service'
        $text | Should -Not -Match 'NOT-TO-BE-SHOWN'
        $text | Should -Not -Match 'QUERYSECRET'
        @(Get-ChildItem -Path $root -Recurse -Force).Count | Should -Be 0
    }

    It 'shows the exact Windows and macOS plans here with -Platform -WhatIf, and refuses to apply them to this machine' {
        $windows = Invoke-Child 'Install-AiGateway -Platform Windows -CloudApiKey $k -WhatIf'
        $windows | Should -Match 'sc\.exe create OllamaContinuityGateway binPath= .*--port 11435 .* start= auto obj= .NT AUTHORITY\\LocalService'
        $windows | Should -Match 'Create gateway\.env \(ACL of the data folder: SYSTEM, Administrators, LocalService\)'
        $windows | Should -Match "CLOUD_API_KEY='\(redacted\)'"
        $windows | Should -Match 'binPath= .*--environment-file C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway\.env'
        $windows | Should -Not -Match 'registry environment|local users can read'
        $windows | Should -Match 'Start-Service -Name OllamaContinuityGateway'
        $windows | Should -Not -Match 'NOT-TO-BE-SHOWN'
        $mac = Invoke-Child 'Install-AiGateway -Platform MacOS -CloudApiKey $k -WhatIf'
        $mac | Should -Match 'com\.ollamacontinuity\.gateway\.plist \(mode 0600\)'
        $mac | Should -Match 'launchctl bootstrap system /Library/LaunchDaemons/com\.ollamacontinuity\.gateway\.plist'
        $mac | Should -Not -Match 'NOT-TO-BE-SHOWN'
        $other = if ($IsWindows) { 'Linux' } else { 'Windows' }
        { Install-AiGateway -Platform $other -CloudApiKey $key } | Should -Throw -ErrorId 'PlatformNotThisMachine,OllamaContinuity.Commands.InstallAiGatewayCommand'
    }

    It 'stages a unit, an owner-only settings file and a token under -Root; the same command again is Unchanged; the CSV report has one row' -Skip:$IsWindows {
        $first = Install-AiGateway -Root $root -CloudApiKey $key -RatePerMinute 120 -Confirm:$false -WarningAction SilentlyContinue
        $first.Status | Should -Be 'Installed'
        $first.Commands | Should -BeNullOrEmpty
        $first.NotRun | Should -Be @('systemctl daemon-reload', 'systemctl enable --now ollamacontinuity-gateway.service')
        (Get-Item $unit).UnixMode | Should -Be '-rw-r--r--'
        (Get-Item $envFile).UnixMode | Should -Be '-rw-------'
        (Get-Item $tokens).UnixMode | Should -Be '-rw-------'
        Get-Content $envFile -Raw | Should -Match "CLOUD_API_KEY='sk-pester-NOT-TO-BE-SHOWN-0123456789'"
        Get-Content $unit -Raw | Should -Not -Match 'NOT-TO-BE-SHOWN'
        Get-Content $unit -Raw | Should -Match '(?m)^ExecStart=.*OllamaContinuity\.Gateway\.dll --bind 127\.0\.0\.1 --port 11435 --tokens-file %d/gateway-tokens .*--rate-per-minute 120$'
        (Get-Content $tokens -Raw | ConvertFrom-Json).tokens[0].token | Should -Match '^oc_.{40,}$'

        $second = Install-AiGateway -Root $root -CloudApiKey $key -RatePerMinute 120 -Confirm:$false
        $second.Status | Should -Be 'Unchanged'
        $second.NotRun | Should -BeNullOrEmpty

        $csv = Join-Path $TestDrive 'gateway-service.csv'
        $second | Export-Csv -Path $csv -NoTypeInformation
        $row = @(Import-Csv $csv)
        $row.Count | Should -Be 1
        $row[0].Files | Should -Be "$tokens (0600); $envFile (0600); $unit (0644)"
        ($row[0] | Format-Table | Out-String) | Should -Not -Match 'System\.'
        (Get-Content $csv -Raw) | Should -Not -Match 'NOT-TO-BE-SHOWN'
    }

    It 'pipes the running gateway (Get-AiGateway) into Install-AiGateway: its port becomes the service''s' -Skip:$IsWindows {
        $running = Start-AiGateway -Port 0 -Confirm:$false
        $running.Port | Should -BeGreaterThan 0
        # The image gets its own tokens file (the one of this session is a path on this machine, not in the image).
        Install-AiGateway -Root $root -Confirm:$false -WarningAction SilentlyContinue | Out-Null
        $result = Get-AiGateway | Install-AiGateway -Root $root -TokensFile /etc/ollamacontinuity/gateway-tokens.json -Confirm:$false -WarningAction SilentlyContinue
        $result.Status | Should -Be 'Updated'
        $result.Url | Should -Be "http://127.0.0.1:$($running.Port)"
        Get-Content $unit -Raw | Should -Match "--port $($running.Port) "
        $result.NotRun | Should -Be @('systemctl daemon-reload', 'systemctl restart ollamacontinuity-gateway.service')
        Stop-AiGateway -Confirm:$false
    }

    It 'uninstalls from the image: the unit and settings go, the tokens stay; again it is NotInstalled' -Skip:$IsWindows {
        $removed = Install-AiGateway -Root $root -Confirm:$false -WarningAction SilentlyContinue | Uninstall-AiGateway -Confirm:$false -WarningAction SilentlyContinue
        $removed.Status | Should -Be 'Removed'
        $removed.NotRun | Should -Be @('systemctl disable --now ollamacontinuity-gateway.service', 'systemctl daemon-reload')
        Test-Path $unit | Should -BeFalse
        Test-Path $envFile | Should -BeFalse
        Test-Path $tokens | Should -BeTrue
        (Uninstall-AiGateway -Root $root -Confirm:$false).Status | Should -Be 'NotInstalled'
    }

    It 'refuses <Case> with <ErrorId> before anything is written' -ForEach @(
        @{ Case = 'a LAN address without -Force'; ErrorId = 'NonLoopbackBindNeedsForce'; Arguments = @{ BindAddress = '192.168.1.10' } }
        @{ Case = 'a LAN address with -Force but no tokens file'; ErrorId = 'TokensFileNotFound'; Arguments = @{ BindAddress = '0.0.0.0'; Force = $true } }
        @{ Case = 'a tokens file that does not exist'; ErrorId = 'TokensFileNotFound'; Arguments = @{ TokensFile = '/etc/ollamacontinuity/none.json' } }
        @{ Case = 'an address that is not one'; ErrorId = 'InvalidBindAddress'; Arguments = @{ BindAddress = 'gateway.example' } }
        @{ Case = 'a root that does not exist'; ErrorId = 'RootNotFound'; Arguments = @{ Root = '/nonexistent/image' } }
    ) {
        $a = @{ Root = $root }
        foreach ($k in $Arguments.Keys) { $a[$k] = $Arguments[$k] }
        { Install-AiGateway @a -Confirm:$false } | Should -Throw -ErrorId "$ErrorId,OllamaContinuity.Commands.InstallAiGatewayCommand"
        if ($Arguments.Root -ne '/nonexistent/image') { @(Get-ChildItem -Path $root -Recurse -Force).Count | Should -Be 0 }
    }

    It 'Uninstall-AiGateway refuses another platform without -WhatIf and a root for Windows' {
        $other = if ($IsWindows) { 'Linux' } else { 'Windows' }
        { Uninstall-AiGateway -Platform $other -Confirm:$false } | Should -Throw -ErrorId 'PlatformNotThisMachine,OllamaContinuity.Commands.UninstallAiGatewayCommand'
        { Uninstall-AiGateway -Platform Windows -Root $root -Confirm:$false } | Should -Throw -ErrorId 'RootNotSupported,OllamaContinuity.Commands.UninstallAiGatewayCommand'
        (Invoke-Child 'Uninstall-AiGateway -Platform Windows -WhatIf') | Should -Match 'not installed; nothing to remove|NotInstalled'
    }

    It 'a LAN address with -Force and a tokens file that holds tokens is staged, with --force and a warning' -Skip:$IsWindows {
        New-Item -ItemType Directory -Path (Split-Path $tokens) -Force | Out-Null
        Set-Content -Path $tokens -Value '{"tokens":[{"name":"billing-app","token":"oc_0123456789abcdefghijklmnopqrstuv"}]}'
        $r = Install-AiGateway -Root $root -BindAddress 0.0.0.0 -Force -TokensFile /etc/ollamacontinuity/gateway-tokens.json -Confirm:$false -WarningVariable w -WarningAction SilentlyContinue
        $r.Url | Should -Be 'http://0.0.0.0:11435'
        Get-Content $unit -Raw | Should -Match '--bind 0\.0\.0\.0 .*--force'
        ($w -join "`n") | Should -Match 'restrict port 11435'
    }
}
