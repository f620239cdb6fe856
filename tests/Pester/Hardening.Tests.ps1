#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Set-OllamaHardening against a staged root (-Root in TestDrive): nothing outside TestDrive is touched, no systemctl runs.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    $script:cmdId = 'OllamaContinuity.Commands.SetOllamaHardeningCommand'

    function New-StagedRoot {
        $root = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $unitDir = Join-Path $root 'etc/systemd/system'
        New-Item -ItemType Directory -Path $unitDir -Force | Out-Null
        Set-Content -Path (Join-Path $unitDir 'ollama.service') -Value "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama`nGroup=ollama" -NoNewline
        $root
    }

    function Get-DropInPath([string] $Root) {
        Join-Path $Root 'etc/systemd/system/ollama.service.d/90-ollamacontinuity.conf'
    }
}

Describe 'Set-OllamaHardening' {
    Context 'module surface' {
        It 'is exported with SupportsShouldProcess and its output type' {
            $cmd = Get-Command Set-OllamaHardening -Module OllamaContinuity
            $cmd.CommandType | Should -Be 'Cmdlet'
            $cmd.Parameters.Keys | Should -Contain 'WhatIf'
            $cmd.Parameters.Keys | Should -Contain 'Confirm'
            $cmd.OutputType.Name | Should -Contain 'OllamaContinuity.Hardening.HardeningSetting'
        }

        It 'has help that says the Ollama server does not read OLLAMA_NO_WEBSERVER' {
            $help = Get-Help Set-OllamaHardening -Full
            @($help.examples.example).Count | Should -BeGreaterOrEqual 3
            ($help.parameters.parameter | Where-Object name -eq 'DisableWebUI').description.Text | Should -Match 'does not read this variable'
        }

        It 'defaults -ServiceUser to ollama' {
            (Get-Help Set-OllamaHardening -Parameter ServiceUser).defaultValue | Should -Be 'ollama'
        }
    }

    Context 'a staged root (Linux systemd layout)' -Skip:(-not $IsLinux) {
        BeforeEach {
            $root = New-StagedRoot
            $dropIn = Get-DropInPath $root
        }

        It 'writes the drop-in with every setting and outputs one object per setting' {
            $out = Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -AllowedOrigins 'https://app.example.com' -DisableWebUI -MemoryMax 16G -CPUQuota 400% -TasksMax 512 -Sandbox
            $out.Setting | Should -Be @('OLLAMA_HOST', 'OLLAMA_ORIGINS', 'OLLAMA_NO_WEBSERVER', 'User', 'Group', 'MemoryMax', 'CPUQuota', 'TasksMax', 'NoNewPrivileges', 'ProtectSystem', 'PrivateTmp', 'ProtectHome', 'ReadWritePaths')
            ($out | Where-Object Setting -eq 'OLLAMA_HOST').After | Should -Be '127.0.0.1:11434'
            $text = Get-Content -Raw $dropIn
            $text | Should -Match 'Environment="OLLAMA_HOST=127\.0\.0\.1:11434"'
            $text | Should -Match 'Environment="OLLAMA_NO_WEBSERVER=1"'
            $text | Should -Match '(?m)^User=ollama$'
            $text | Should -Match '(?m)^ProtectSystem=strict$'
            $text | Should -Match '(?m)^ReadWritePaths=.*/usr/share/ollama/\.ollama/models'
        }

        It 'changes nothing on a second identical run' {
            Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -Sandbox | Out-Null
            $before = Get-Item $dropIn
            $second = Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -Sandbox
            $second.Changed | Should -Not -Contain $true
            (Get-Item $dropIn).LastWriteTimeUtc | Should -Be $before.LastWriteTimeUtc
            @(Get-ChildItem (Split-Path $dropIn) -Filter '*.bak').Count | Should -Be 0
        }

        It 'keeps a backup of the file it replaces' {
            Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 | Out-Null
            $old = Get-Content -Raw $dropIn
            $out = Set-OllamaHardening -Root $root -BindAddress 0.0.0.0:11434 -Force -WarningAction SilentlyContinue
            ($out | Where-Object Setting -eq 'OLLAMA_HOST') | Should -Not -BeNullOrEmpty
            ($out | Where-Object Setting -eq 'OLLAMA_HOST').Before | Should -Be '127.0.0.1:11434'
            $backup = @(Get-ChildItem (Split-Path $dropIn) -Filter '90-ollamacontinuity.conf.*.bak')
            $backup.Count | Should -Be 1
            Get-Content -Raw $backup[0].FullName | Should -Be $old
        }

        It 'leaves other drop-ins alone' {
            $other = Join-Path (Split-Path $dropIn) '10-gpu.conf'
            New-Item -ItemType Directory -Path (Split-Path $dropIn) -Force | Out-Null
            Set-Content -Path $other -Value "[Service]`nEnvironment=CUDA_VISIBLE_DEVICES=0" -NoNewline
            Set-OllamaHardening -Root $root -Sandbox | Out-Null
            Get-Content -Raw $other | Should -Be "[Service]`nEnvironment=CUDA_VISIBLE_DEVICES=0"
        }

        It '-WhatIf touches nothing and outputs nothing' {
            $out = Set-OllamaHardening -Root $root -BindAddress 192.168.1.10:11434 -WhatIf
            $out | Should -BeNullOrEmpty
            Test-Path (Split-Path $dropIn) | Should -BeFalse
        }

        It 'refuses a wildcard origin without -Force, saying why' {
            { Set-OllamaHardening -Root $root -AllowedOrigins '*' } | Should -Throw -ErrorId "WildcardOrigin,$cmdId" -ExpectedMessage '*every web page*'
            Test-Path $dropIn | Should -BeFalse
            Set-OllamaHardening -Root $root -AllowedOrigins '*' -Force -WarningAction SilentlyContinue | Out-Null
            Get-Content -Raw $dropIn | Should -Match 'OLLAMA_ORIGINS=\*'
        }

        It 'refuses root as the service user' {
            { Set-OllamaHardening -Root $root -ServiceUser root } | Should -Throw -ErrorId "RootServiceUser,$cmdId"
            Test-Path $dropIn | Should -BeFalse
        }

        It 'refuses every interface (<_>) without -Force, and warns about the port-80 trap with it' -ForEach 'http://0.0.0.0', '0.0.0.0:11434', ':11434', '[::]:11434' {
            { Set-OllamaHardening -Root $root -BindAddress $_ } | Should -Throw -ErrorId "BindAllInterfaces,$cmdId" -ExpectedMessage '*every interface*'
            Test-Path $dropIn | Should -BeFalse
            Set-OllamaHardening -Root $root -BindAddress $_ -Force -WarningVariable w -WarningAction SilentlyContinue | Out-Null
            ($w | Out-String) | Should -Match 'every interface'
            if ($_ -eq 'http://0.0.0.0') { ($w | Out-String) | Should -Match 'port 80' }
        }

        It 'refuses a value Ollama cannot listen on (<_>), even with -Force' -ForEach 'not:a:port:x', '010.0.0.1:11434', '127.0.0.1:99999', 'ftp://127.0.0.1:11434' {
            { Set-OllamaHardening -Root $root -BindAddress $_ -Force } | Should -Throw -ErrorId "InvalidBindAddress,$cmdId"
            Test-Path $dropIn | Should -BeFalse
        }

        It 'refuses a root whose parent directory links outside it, and writes nothing there' {
            $outside = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
            New-Item -ItemType Directory -Path $outside | Out-Null
            Remove-Item -Recurse -Force (Join-Path $root 'etc/systemd/system')
            New-Item -ItemType SymbolicLink -Path (Join-Path $root 'etc/systemd/system') -Target $outside | Out-Null
            { Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 } | Should -Throw -ErrorId "PathOutsideRoot,$cmdId"
            @(Get-ChildItem -Recurse $outside).Count | Should -Be 0
        }

        It 'pipes into Export-Csv' {
            $csv = Join-Path $TestDrive 'hardening.csv'
            Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -MemoryMax 8G | Export-Csv -Path $csv -NoTypeInformation
            $rows = Import-Csv $csv
            $rows.Setting | Should -Contain 'MemoryMax'
            ($rows | Where-Object Setting -eq 'MemoryMax').After | Should -Be '8G'
            ($rows | Where-Object Setting -eq 'MemoryMax').Changed | Should -Be 'True'
        }
    }
}
