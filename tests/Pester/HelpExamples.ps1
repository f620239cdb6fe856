# Every help example of the module (Get-Help <cmdlet> -Examples, and the code lines of about_OllamaContinuity) with
# how Help.Tests.ps1 runs it. Dot-sourced at discovery and at run time. Each example runs as written, in a fresh
# folder with its own contingency state (OLLAMACONTINUITY_STATE_DIR), with the stand-in cloud and Ollama in
# CLOUD_API_URL / OLLAMA_URL and a temporary HOME, and:
#   WhatIf     $WhatIfPreference = $true around it: it would change the host (firewall, systemd, drill block), so
#              every cmdlet of it only says what it would do (-WhatIf for the whole example);
#   Replace    literal text swapped before running, always a path or network on the admin's machine for a local one
#              (the mounted image, the admin's files, the office subnets: a scan never leaves 127.0.0.1);
#   Setup      PowerShell run first in the example's folder (its input files, stand-ins for system tools);
#   Errors     the error ids the example shows on purpose;
#   Shows      a pattern its output must match (what the remarks promise);
#   Needs      Root: it reads the host firewall or systemd, which needs root on Linux (skipped elsewhere);
#              Linux: it names a Linux path;
#              Vault: it reads SecretManagement; the runner imports the real module (tests/vendor, built by
#              Help.Tests.ps1) and Setup registers the test vault as Company with the secrets the example names;
#   Skip       why it cannot run here (reported as skipped).

function Get-HelpExample {
    param([Parameter(Mandatory)] [string] $ModuleManifest)

    $image = @'
New-Item -ItemType Directory -Path ./image/etc/systemd/system -Force | Out-Null
Set-Content -Path ./image/etc/systemd/system/ollama.service -Value "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama`nEnvironment=`"OLLAMA_HOST=0.0.0.0`"`n"
'@
    $root = 'Root'
    # The company's vault, stood in for by the test vault (its file in the example's folder; the registry in the runner's
    # temporary HOME): the cloud key as OpenAIKey, and a second gateway client token as gw-reports.
    $testVault = Join-Path $PSScriptRoot 'TestVault/OcTestVault'
    $secretManagement = Join-Path $PSScriptRoot '../vendor/SecretManagement/bin/Release/module/Microsoft.PowerShell.SecretManagement/Microsoft.PowerShell.SecretManagement.psd1'
    $vault = @"
Import-Module '$secretManagement'
Register-SecretVault -Name Company -ModuleName '$testVault' -VaultParameters @{ Path = (New-Item -ItemType Directory ./vault -Force).FullName } -DefaultVault -AllowClobber
Set-Secret -Name OpenAIKey -Secret (ConvertTo-SecureString `$env:CLOUD_API_KEY -AsPlainText -Force)
Set-Secret -Name gw-reports -Secret @{ name = 'reports-app'; token = 'oc_reports_app_token_0123456789abcdef' }
"@
    $stopGateway = "`nStop-AiGateway -Confirm:`$false | Out-Null   # the test stops the gateway it started"
    $plan = @{
        'Get-AiContinuityAlert #2'     = @{ Setup = "`$env:OLLAMACONTINUITY_ALERT_WEBHOOK = 'http://127.0.0.1:9/alerts'   # alerts configured (nothing is sent)" }
        'Get-OllamaFirewallRule #1'    = @{ Needs = $root }
        'Get-OllamaFirewallRule #2'    = @{ Needs = $root; Setup = "function logger { `$args -join ' ' | Set-Content ./syslog.txt }   # a stand-in for the system log" }
        'Get-OllamaFirewallRule #3'    = @{ Needs = $root }
        'Invoke-AiRequest #1'          = @{ Shows = 'help-cloud: reply to Summarise' }
        'Invoke-AiRequest #2'          = @{ Needs = 'Vault'; Setup = $vault + "`nSet-Content ./tickets.txt 'ticket 1', 'ticket 2'"
            Replace = @{ 'http://gpu01:11434, http://gpu02:11434' = '$env:OLLAMA_URL, http://127.0.0.1:9'; 'Export-Csv ./triage.csv -NoTypeInformation' = "Export-Csv ./triage.csv -NoTypeInformation`nImport-Csv ./triage.csv | Format-Table Text, Backend" }
            Shows = 'reply to ticket 2\s+Cloud' }
        'Invoke-AiRequest #3'          = @{ Needs = 'Linux'; Shows = 'Cloud'; Setup = "'ticket 1', 'ticket 2' | Invoke-AiRequest -Workflow ticket-triage | Export-Csv ./triage.csv -NoTypeInformation   # Example 2's output" }
        'Invoke-AiRequest #4'          = @{ Setup = "Set-Content ./contract.txt 'The supplier delivers monthly. The customer pays within 30 days.'" }
        'Invoke-AiRequest #5'          = @{ Shows = 'reply to second prompt'; Setup = "Set-Content ./prompts.txt 'first prompt', 'second prompt'" }
        'Remove-OllamaFirewallRule #1' = @{ Needs = $root; WhatIf = $true }
        'Remove-OllamaFirewallRule #2' = @{ Needs = $root; WhatIf = $true; Replace = @{ '/var/log/ollama-firewall.csv' = './ollama-firewall.csv' } }
        'Remove-OllamaFirewallRule #3' = @{ Needs = $root; WhatIf = $true }
        'Set-AiContinuityAlert #1'     = @{ Skip = 'asks for the webhook URL with Read-Host (an interactive session)' }
        'Set-OllamaFirewallRule #1'    = @{ Needs = $root; WhatIf = $true }
        'Set-OllamaFirewallRule #2'    = @{ Needs = $root; WhatIf = $true; Setup = "Set-Content ./allowed-networks.txt '192.168.1.0/24', '10.8.0.0/24'"
            Replace = @{ '/etc/ollama/allowed-networks.txt' = './allowed-networks.txt'; '/var/log/ollama-firewall.csv' = './ollama-firewall.csv' } }
        'Set-OllamaFirewallRule #3'    = @{ Needs = $root; WhatIf = $true }
        'Set-OllamaFirewallRule #4'    = @{ Skip = 'changes the host firewall with a native command (ufw allow, then ufw enabled): -WhatIf cannot hold back ufw' }
        'Set-OllamaHardening #1'       = @{ Needs = $root; WhatIf = $true }
        'Set-OllamaHardening #2'       = @{ Skip = "a line for cron's shell (sh), not PowerShell code; it restarts ollama.service" }
        'Set-OllamaHardening #3'       = @{ Setup = $image; Replace = @{ '/mnt/image' = './image' } }
        'Set-OllamaHardening #4'       = @{ Needs = $root; WhatIf = $true; Errors = 'WildcardOrigin', 'RootServiceUser', 'BindAllInterfaces', 'InvalidBindAddress', 'PathOutsideRoot'
            Replace = @{ '/mnt/image' = './image' }
            Setup = $image + "`nNew-Item -ItemType SymbolicLink -Path ./image/etc/systemd/system/ollama.service.d -Target ([System.IO.Path]::GetTempPath()) | Out-Null   # a link in the image that leads outside it" }
        'Get-AiRequestLog #4'          = @{ Setup = "New-Item -ItemType Directory ./collected | Out-Null; Invoke-AiRequest 'collected from a server' -LogPath ./collected/requests.jsonl | Out-Null   # a log collected from a server" }
        'Start-AiGateway #1'           = @{ Needs = 'Vault'; Setup = $vault; Shows = '127\.0\.0\.1'
            Replace = @{ '-OllamaUri http://localhost:11434' = '-OllamaUri $env:OLLAMA_URL -Port 0' + $stopGateway } }
        'Start-AiGateway #2'           = @{ Needs = 'Vault'; Setup = $vault; Shows = '127\.0\.0\.1'
            Replace = @{ 'Start-AiGateway -CloudApiKey (Get-Secret OpenAIKey) }' = 'Start-AiGateway -Port 0 -CloudApiKey (Get-Secret OpenAIKey) }' + $stopGateway } }
        'Start-AiGateway #3'           = @{ Skip = 'binds every interface of the machine and reads a tokens file in /etc: a gateway for a team network, not for a test' }
        'Start-AiGateway #4'           = @{ WhatIf = $true }
        'Start-AiGateway #5'           = @{ Needs = 'Vault'; Setup = $vault; Shows = '127\.0\.0\.1'
            Replace = @{ '-ClientTokenSecret gw-billing, gw-reports -Vault Company' = '-ClientTokenSecret gw-billing, gw-reports -Vault Company -Port 0' + $stopGateway } }
        'Stop-AiGateway #2'            = @{ Skip = 'Update-Module needs the module installed from a repository (Install-PSResource), not imported from a build folder' }
        'Install-AiGateway #1'         = @{ WhatIf = $true }
        'Install-AiGateway #2'         = @{ WhatIf = $true }
        'Install-AiGateway #3'         = @{ WhatIf = $true; Replace = @{ '/etc/ollamacontinuity/team-tokens.json' = './team-tokens.json' }
            Setup = "Set-Content ./team-tokens.json '{`"tokens`":[{`"name`":`"billing-app`",`"token`":`"oc_0123456789abcdefghijklmnopqrstuv`"}]}'   # the team's tokens file" }
        'Install-AiGateway #4'         = @{ Shows = 'ollamacontinuity-gateway'; Replace = @{ '/mnt/image' = './image' }; Setup = 'New-Item -ItemType Directory ./image | Out-Null' }
        'Install-AiGateway #5'         = @{ Replace = @{ '/mnt/image' = './image' }; Setup = 'New-Item -ItemType Directory ./image | Out-Null' }
        'Uninstall-AiGateway #1'       = @{ WhatIf = $true }
        'Uninstall-AiGateway #2'       = @{ WhatIf = $true; Replace = @{ '/var/log/ollamacontinuity/gateway-service.csv' = './gateway-service.csv' } }
        'Uninstall-AiGateway #3'       = @{ Shows = 'Removed'; Replace = @{ '/mnt/image' = './image' }; Setup = 'New-Item -ItemType Directory ./image | Out-Null' }
        'Start-FailoverDrill #1'       = @{ WhatIf = $true }
        'Start-FailoverDrill #2'       = @{ Needs = $root; WhatIf = $true; Replace = @{ '/srv/drill' = '.' } }
        'Start-FailoverDrill #3'       = @{ Shows = 'outage|outcome|Passed|Failed'; Replace = @{ '/srv/drill/reports' = './reports' }
            Setup = "New-Item -ItemType Directory ./reports | Out-Null; Start-FailoverDrill -Duration 00:00:01 -Interval 00:00:00.500 -SkipAlertCheck -ReportPath ./reports/drill.json -ReportFormat Json -Confirm:`$false | Out-Null" }
        'Start-FailoverDrill #4'       = @{ Needs = $root }
        'Start-FailoverDrill #5'       = @{ Shows = 'Failover, Gateway, Ollama'; Setup = "Start-AiGateway -Port 0 | Out-Null   # the team's gateway, serving the applications"
            # A shorter block; the gateway this example drilled is stopped after it.
            Replace = @{ '00:05:00' = '00:00:01'; '00:00:05' = '00:00:00.300'; '-NoElement' = "-NoElement`nStop-AiGateway -Confirm:`$false | Out-Null" } }
        'Stop-FailoverDrill #1'        = @{ Needs = $root; WhatIf = $true }
        'Stop-FailoverDrill #2'        = @{ Needs = $root; WhatIf = $true }
        'Stop-FailoverDrill #3'        = @{ Needs = $root; WhatIf = $true }
        'Test-OllamaExposure #2'       = @{ Replace = @{ '192.168.10.0/24, 192.168.20.0/24' = '127.0.0.1' } }
        'Test-OllamaExposure #3'       = @{ Replace = @{ '10.8.0.0/22' = '127.0.0.1' } }
        'Test-OllamaExposure #4'       = @{ Shows = 'BindAddress'; Setup = $image; Replace = @{ '/mnt/image' = './image' } }
        'Test-OllamaExposure #5'       = @{ Shows = 'Authentication'; Replace = @{ '192.168.10.0/24' = '127.0.0.1' } }
    }

    Import-Module $ModuleManifest -Force
    $examples = foreach ($command in Get-Command -Module OllamaContinuity | Sort-Object Name) {
        $i = 0
        foreach ($example in @((Get-Help $command.Name -Full).examples.example)) {
            $i++
            @{ Name = "$($command.Name) #$i"; Title = "$($example.title)".Trim('- '); Code = (@($example.code) -join "`n") }
        }
    }
    # The about topic's code lines (indented commands).
    $about = Join-Path (Split-Path $ModuleManifest) 'en-US/about_OllamaContinuity.help.txt'
    $i = 0
    foreach ($line in Get-Content $about | Where-Object { $_ -match '^\s+(\$PSDefaultParameterValues|Get-Help )' }) {
        $i++
        $examples += @{ Name = "about_OllamaContinuity #$i"; Title = 'code line'; Code = $line.Trim() }
    }

    foreach ($e in $examples) {
        $p = $plan[$e.Name]
        if (-not $p) { $p = @{} }
        $e.WhatIf = [bool]$p.WhatIf
        $e.Replace = if ($p.Replace) { $p.Replace } else { @{} }
        $e.Setup = "$($p.Setup)"
        $e.Errors = @($p.Errors | Where-Object { $_ })
        $e.Needs = "$($p.Needs)"
        $e.Skip = "$($p.Skip)"
        $e.Shows = "$($p.Shows)"
        $e.Planned = $plan.ContainsKey($e.Name)
        $e
    }
    # Every entry of the plan must name an example that exists (a renumbered example must not lose its plan).
    $names = $examples | ForEach-Object { $_.Name }
    foreach ($k in $plan.Keys) { if ($names -notcontains $k) { throw "HelpExamples.ps1 plans '$k', which is not an example." } }
}
