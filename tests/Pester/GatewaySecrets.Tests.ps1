#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Start-AiGateway -ClientTokenSecret with the REAL Microsoft.PowerShell.SecretManagement 1.1.2, built from the
# vendored upstream source in tests/vendor/SecretManagement (test only, never shipped), and OcTestVault, a test
# extension vault (tests/Pester/TestVault) registered with the real Register-SecretVault.
# SecretManagement keeps its vault registry in $HOME/.secretmanagement and fixes that path the first time it is used
# in a process: HOME points at a temporary folder before it is imported here, so the machine's registry is never read
# or written (no other Pester file uses SecretManagement). HOME is restored afterwards.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')

    # The vendored module, built on demand (as tests/FakeServer is).
    $script:smManifest = Get-VendoredSecretManagement

    $script:work = Join-Path ([IO.Path]::GetTempPath()) "oc-pester-secrets-$([guid]::NewGuid().ToString('n'))"
    $script:homeDir = Join-Path $work 'home'
    $script:vaultDir = Join-Path $work 'vault'   # the test vault's own storage: outside every folder scanned below
    $script:stateDir = Join-Path $work 'state'
    $null = New-Item -ItemType Directory -Path $homeDir, $vaultDir, $stateDir
    $script:savedHome = $env:HOME
    $script:savedStateDir = $env:OLLAMACONTINUITY_STATE_DIR
    $env:HOME = $homeDir
    $env:OLLAMACONTINUITY_STATE_DIR = $stateDir

    Import-Module $smManifest -ErrorAction Stop
    $script:vault = 'OcTest' + [guid]::NewGuid().ToString('n').Substring(0, 8)
    Register-SecretVault -Name $vault -ModuleName (Join-Path $PSScriptRoot 'TestVault/OcTestVault') -VaultParameters @{ Path = $vaultDir } -ErrorAction Stop

    $script:f = Start-FailoverFixture -ApiKey (ConvertTo-SecureString -String 'sk-pester-secrets-cloud' -AsPlainText -Force)
    $script:backends = @{ CloudUri = $f.Cloud.ChatUri; OllamaUri = $f.Ollama.BaseUri }

    function script:New-Token { 'oc_secret_' + [guid]::NewGuid().ToString('n') }

    function script:Invoke-Chat([string] $Url, [string] $Token) {
        $body = '{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}'
        (Invoke-WebRequest -Uri "$Url/v1/chat/completions" -Method Post -Body $body -ContentType 'application/json' `
            -Headers @{ Authorization = "Bearer $Token" } -SkipHttpErrorCheck -NoProxy).StatusCode
    }

    function script:Format-Shown($Item) {
        if ($Item -is [System.Management.Automation.ErrorRecord]) { "$Item $($Item.Exception) $($Item.ErrorDetails) $($Item.ErrorDetails.RecommendedAction) $($Item.TargetObject)" }
        elseif ($Item -is [System.Management.Automation.InformationRecord]) { "$($Item.MessageData)" }
        else { ($Item | Format-List * | Out-String -Width 500) + "$Item" }
    }

    # Everything a call showed: output, every stream, host lines (-WhatIf) and its terminating error, as text.
    function script:Get-Shown([scriptblock] $Script) {
        (Invoke-Captured $Script).Shown
    }

    # Runs a script; returns its terminating error (Error) and everything it showed (Shown).
    function script:Invoke-Captured([scriptblock] $Script) {
        $lines = [System.Collections.Generic.List[string]]::new()
        $failure = $null
        try {
            & $Script *>&1 | ForEach-Object { $lines.Add((Format-Shown $_)) }
        } catch {
            $failure = $_
            $lines.Add((Format-Shown $_))
        }
        [pscustomobject]@{ Error = $failure; Shown = $lines -join "`n" }
    }

    function script:Assert-NoFileHolds([string[]] $Tokens, [string[]] $Folders) {
        $files = $Folders | Where-Object { Test-Path -LiteralPath $_ } | ForEach-Object { Get-ChildItem -LiteralPath $_ -Recurse -File -Force } |
            Where-Object { $_.UnixMode -notlike 's*' }   # the gateway's control socket holds nothing and cannot be read as a file
        foreach ($file in $files) {
            $text = [System.Text.Encoding]::UTF8.GetString([System.IO.File]::ReadAllBytes($file.FullName))
            foreach ($t in $Tokens) { $text.Contains($t) | Should -BeFalse -Because "$($file.FullName) must not hold a plain client token" }
        }
        @($files).Count
    }
}

AfterAll {
    Stop-AiGateway -Confirm:$false -ErrorAction SilentlyContinue
    if ($f) { $f | Stop-FailoverFixture }
    Unregister-SecretVault -Name $vault -ErrorAction SilentlyContinue
    $env:HOME = $savedHome
    $env:OLLAMACONTINUITY_STATE_DIR = $savedStateDir
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Start-AiGateway -ClientTokenSecret (real SecretManagement)' {
    AfterEach { Stop-AiGateway -Confirm:$false -ErrorAction SilentlyContinue }

    It 'serves a token from the vault (200), refuses a wrong one (401), and the token is in no command line, environment, file or output' -Skip:(-not $IsLinux) {
        $app = New-Token
        $hr = New-Token
        Set-Secret -Name oc-app -Secret $app -Vault $vault
        Set-Secret -Name oc-hr -Secret @{ name = 'hr-app'; token = $hr; workflow = 'hr-records'; ratePerMinute = 30 } -Vault $vault
        $log = Join-Path $stateDir 'requests.jsonl'

        # -WhatIf reads the secrets (a missing one would be reported) but starts nothing and shows only their names.
        # The What if: line goes to the host, not to a stream: a transcript records it.
        $transcript = Join-Path $work 'whatif.txt'
        $null = Start-Transcript -LiteralPath $transcript
        try { $whatIf = Get-Shown { Start-AiGateway -Port 0 -ClientTokenSecret oc-app, oc-hr -Vault $vault -WhatIf -Verbose } } finally { $null = Stop-Transcript }
        $whatIf += "`n" + (Get-Content -Raw -LiteralPath $transcript)
        Remove-Item -LiteralPath $transcript
        $whatIf | Should -Match ([regex]::Escape("client tokens from the secret(s) oc-app, oc-hr in the vault $vault"))
        $whatIf | Should -Not -Match $app
        $whatIf | Should -Not -Match $hr
        Get-AiGateway | Should -BeNullOrEmpty

        $script:g = $null
        $shown = Get-Shown { $script:g = Start-AiGateway -Port 0 -ClientTokenSecret oc-app, oc-hr -Vault $vault @backends -LogPath $log -Verbose; $script:g }
        $shown | Should -Match "client 'hr-app' \(workflow hr-records\)"
        $shown | Should -Not -Match $app
        $shown | Should -Not -Match $hr
        $g.Health | Should -Be 'Healthy'
        $g.TokensFile | Should -BeNullOrEmpty
        $g.Requests | Should -Be 0   # the cmdlet read the gateway's counts with a token from the vault

        Invoke-Chat $g.Url $app | Should -Be 200
        Invoke-Chat $g.Url $hr | Should -Be 200

        # Get-AiGateway has no tokens file to take a token from: it reads the counts over the gateway's owner-only
        # control socket (gateway.sock beside gateway.json), which needs none.
        $now = Get-AiGateway
        $now.TokensFile | Should -BeNullOrEmpty
        $now.ControlSocket | Should -Be (Join-Path $stateDir 'User/gateway.sock')
        $now.Health | Should -Be 'Healthy'
        $now.Requests | Should -Be 2
        $now.InFlight | Should -Be 0
        Invoke-Chat $g.Url ($app.Substring(0, $app.Length - 1) + 'x') | Should -Be 401
        Invoke-Chat $g.Url (New-Token) | Should -Be 401

        # The gateway process: its command line (what ps shows every local user) and its environment.
        $cmdline = [System.IO.File]::ReadAllText("/proc/$($g.ProcessId)/cmdline").Replace([char]0, ' ')
        $environ = [System.IO.File]::ReadAllText("/proc/$($g.ProcessId)/environ")
        $cmdline | Should -Match '--tokens-stdin'
        $cmdline | Should -Not -Match '--tokens-file'
        foreach ($t in $app, $hr) {
            $cmdline.Contains($t) | Should -BeFalse
            $environ.Contains($t) | Should -BeFalse
        }

        # Every file the cmdlet and the gateway wrote (state, console log, request log, HOME) is free of the tokens,
        # and no default tokens file was made.
        Join-Path $stateDir 'User/gateway-tokens.json' | Should -Not -Exist
        (Get-Content -Raw $log) | Should -Match 'hr-records'
        $scanned = Assert-NoFileHolds -Tokens $app, $hr -Folders $stateDir, $homeDir
        $scanned | Should -BeGreaterOrEqual 3   # gateway.json, gateway.log, requests.jsonl at least

        # The drill tests the applications' path over TCP with an application token (never the control socket): with
        # no tokens file to take one from, it asks for -GatewayToken before anything is blocked.
        $e = { Start-FailoverDrill -Gateway -BlockMethod Contingency -Duration 00:00:02 -SkipAlertCheck @backends -Confirm:$false -ErrorAction Stop } |
            Should -Throw -ErrorId 'GatewayTokenRequired,OllamaContinuity.Commands.StartFailoverDrillCommand' -PassThru
        "$e $($e.Exception.Message)" | Should -Match 'secrets only'
        "$e $($e.Exception.Message)" | Should -Match 'pass one of its client tokens with -GatewayToken'
        "$e $($e.Exception.Message)" | Should -Not -Match '\(\)'

        # Stop-AiGateway ends the process outright, so it removes the control socket itself.
        Stop-AiGateway -Confirm:$false
        Join-Path $stateDir 'User/gateway.sock' | Should -Not -Exist
    }

    It 'combines a tokens file and secrets' {
        $fileToken = New-Token
        $secretToken = New-Token
        $file = Join-Path $work 'tokens.json'
        Set-Content -LiteralPath $file -Value (@{ tokens = @(@{ name = 'from-file'; token = $fileToken }) } | ConvertTo-Json -Depth 3)
        Set-Secret -Name oc-both -Secret $secretToken -Vault $vault
        $g = Start-AiGateway -Port 0 -TokensFile $file -ClientTokenSecret oc-both -Vault $vault @backends
        $g.TokensFile | Should -Be $file
        Invoke-Chat $g.Url $fileToken | Should -Be 200
        Invoke-Chat $g.Url $secretToken | Should -Be 200
        Invoke-Chat $g.Url (New-Token) | Should -Be 401
    }

    It 'refuses <What> with <ErrorId>, before anything starts, without showing the value' -ForEach @(
        @{ What = 'a token that is too short'; Value = 'oc_short_9f3a'; ErrorId = 'ClientTokenTooShort' }
        @{ What = 'a hashtable without a token'; Value = @{ name = 'x'; workflow = 'hr' }; ErrorId = 'ClientTokenSecretInvalid' }
        @{ What = 'a bad workflow name'; Value = @{ token = 'oc_secret_badwf_9f3a0123456789'; workflow = 'no spaces' }; ErrorId = 'ClientTokenSecretInvalid' }
        @{ What = 'broken JSON'; Value = '{"token":"oc_secret_json_9f3a0123456789"'; ErrorId = 'ClientTokenSecretInvalid' }
        @{ What = 'an unknown key'; Value = @{ token = 'oc_secret_key_9f3a0123456789'; colour = 'blue' }; ErrorId = 'ClientTokenSecretInvalid' }
    ) {
        Set-Secret -Name oc-bad -Secret $Value -Vault $vault
        $r = Invoke-Captured { Start-AiGateway -Port 0 -ClientTokenSecret oc-bad -Vault $vault -Verbose }
        $r.Error.FullyQualifiedErrorId | Should -Be "$ErrorId,OllamaContinuity.Commands.StartAiGatewayCommand"
        $r.Error.Exception.Message | Should -Match "'oc-bad'"
        $r.Shown | Should -Not -Match '9f3a'
        Join-Path $stateDir 'User/gateway.json' | Should -Not -Exist
        Join-Path $stateDir 'User/gateway-tokens.json' | Should -Not -Exist
    }

    It 'refuses a missing secret, two secrets naming one client, an unknown vault, and -Vault alone' {
        $r = Invoke-Captured { Start-AiGateway -Port 0 -ClientTokenSecret oc-nowhere -Vault $vault }
        $r.Error.FullyQualifiedErrorId | Should -Be 'ClientTokenSecretNotFound,OllamaContinuity.Commands.StartAiGatewayCommand'
        $r.Error.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $r.Error.Exception.Message | Should -Match "'oc-nowhere'"

        $one = New-Token
        Set-Secret -Name oc-one -Secret @{ name = 'same'; token = $one } -Vault $vault
        Set-Secret -Name oc-two -Secret @{ name = 'same'; token = (New-Token) } -Vault $vault
        $r = Invoke-Captured { Start-AiGateway -Port 0 -ClientTokenSecret oc-one, oc-two -Vault $vault }
        $r.Error.FullyQualifiedErrorId | Should -Be 'DuplicateClientName,OllamaContinuity.Commands.StartAiGatewayCommand'
        $r.Shown | Should -Match "'same'"
        $r.Shown | Should -Not -Match $one

        $r = Invoke-Captured { Start-AiGateway -Port 0 -ClientTokenSecret oc-one -Vault 'NoSuchVault' }
        $r.Error.FullyQualifiedErrorId | Should -Be 'ClientTokenSecretReadFailed,OllamaContinuity.Commands.StartAiGatewayCommand'
        $r.Error.CategoryInfo.Category | Should -Be 'ReadError'
        $r.Error.Exception.Message | Should -Match "'oc-one' in the vault 'NoSuchVault'"

        $r = Invoke-Captured { Start-AiGateway -Port 0 -Vault $vault }
        $r.Error.FullyQualifiedErrorId | Should -Be 'VaultWithoutClientTokenSecret,OllamaContinuity.Commands.StartAiGatewayCommand'
        Join-Path $stateDir 'User/gateway.json' | Should -Not -Exist
        Join-Path $stateDir 'User/gateway-tokens.json' | Should -Not -Exist
    }

    It 'refuses -ClientTokenSecret with SecretManagementNotAvailable when no Get-Secret command exists' {
        # A fresh pwsh with the module only: no SecretManagement on its module path.
        $pwsh = Join-Path $PSHOME 'pwsh'
        $id = & $pwsh -NoProfile -NonInteractive -Command "
            `$env:PSModulePath = ''
            `$env:OLLAMACONTINUITY_STATE_DIR = '$stateDir'
            Import-Module '$(Get-ModuleManifestPath)'
            try { Start-AiGateway -Port 0 -ClientTokenSecret oc-app } catch { `$e = `$_ }
            `$e.FullyQualifiedErrorId + '|' + `$e.CategoryInfo.Category + '|' + `$e.ErrorDetails.RecommendedAction"
        $id | Should -Match '^SecretManagementNotAvailable,OllamaContinuity.Commands.StartAiGatewayCommand\|ObjectNotFound\|.*-TokensFile'
        Join-Path $stateDir 'User/gateway-tokens.json' | Should -Not -Exist
    }
}
