#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Help that runs: every example of Get-Help (and the about topic's code lines) runs as written in a fresh pwsh,
# against the stand-in cloud and Ollama on 127.0.0.1, or with $WhatIfPreference / a staged -Root when it would
# change the host; the ones that cannot run here are skipped with their reason (HelpExamples.ps1 has the plan).
# Also: Get-Help ./build.ps1 -Full, and error advice that names commands of this operating system.

BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'HelpExamples.ps1')
    $script:examples = @(Get-HelpExample -ModuleManifest (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1'))
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'HelpExamples.ps1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:manifest = (Resolve-Path (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')).Path
    $script:repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:isRoot = -not $IsWindows -and (& id -u) -eq '0'
}

Describe 'Help examples' {
    BeforeAll {
        $all = @(Get-HelpExample -ModuleManifest $manifest)
        $script:work = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-help-" + [guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory -Path (Join-Path $work 'home'), (Join-Path $work 'run') | Out-Null
        $script:cloud = Start-FakeServer -Api OpenAI -Name help-cloud
        $script:ollama = Start-FakeServer -Api Ollama -Name help-ollama

        $runnable = @($all | Where-Object { -not $_.Skip -and ($_.Needs -ne 'Root' -or $isRoot) -and ($_.Needs -ne 'Linux' -or $IsLinux) })
        if ($runnable | Where-Object Needs -eq 'Vault') { $null = Get-VendoredSecretManagement }   # built before the runner imports it
        $runnable | ForEach-Object { [pscustomobject]$_ } | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $work 'examples.json')
        $runner = @'
param($Work, $Manifest)
$ErrorActionPreference = 'Continue'
$ProgressPreference = 'SilentlyContinue'
Import-Module $Manifest
$baseline = @{}
foreach ($k in 'CLOUD_API_URL', 'CLOUD_API_KEY', 'OLLAMA_URL') { $baseline[$k] = [Environment]::GetEnvironmentVariable($k) }
$results = foreach ($x in Get-Content (Join-Path $Work 'examples.json') -Raw | ConvertFrom-Json) {
    foreach ($k in 'OLLAMACONTINUITY_ALERT_WEBHOOK', 'OLLAMACONTINUITY_ALERT_FORMAT', 'AI_CONTINGENCY_MODE', 'OLLAMACONTINUITY_LOG_PATH') { [Environment]::SetEnvironmentVariable($k, $null) }
    foreach ($k in $baseline.Keys) { [Environment]::SetEnvironmentVariable($k, $baseline[$k]) }
    $dir = Join-Path $Work ('run/' + ($x.Name -replace '[^\w]+', '-'))
    New-Item -ItemType Directory -Path $dir -Force | Out-Null
    Set-Location $dir
    $env:OLLAMACONTINUITY_STATE_DIR = Join-Path $dir 'state'   # contingency turned on by one example stays in it
    $code = $x.Code
    foreach ($p in $x.Replace.PSObject.Properties) { $code = $code.Replace($p.Name, $p.Value) }
    # Each example in its own scope of this runspace, as a script: a statement-terminating error (an ErrorRecord
    # from a cmdlet) is recorded and the next line runs, exactly as at the prompt; a throw ends the example.
    $script = "$($x.Setup)`n`$WhatIfPreference = `$$($x.WhatIf)`n$code"
    $ps = [powershell]::Create([System.Management.Automation.RunspaceMode]::CurrentRunspace)
    $null = $ps.AddScript($script, $true)
    $errors = [System.Collections.Generic.List[object]]::new()
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $text = try { $ps.Invoke() | Out-String -Width 160 } catch { $errors.Add($(if ($_.Exception.InnerException -is [System.Management.Automation.IContainsErrorRecord]) { $_.Exception.InnerException.ErrorRecord } else { $_ })); '' }
    $errors.InsertRange(0, [object[]]@($ps.Streams.Error))
    $ps.Dispose()
    $Error.Clear()
    [pscustomobject]@{
        Name   = $x.Name
        Ms     = $clock.ElapsedMilliseconds
        Code   = $code
        Errors = @($errors | ForEach-Object { [pscustomobject]@{ Id = $_.FullyQualifiedErrorId; Message = "$_" } })
        Output = if ($text.Length -gt 4000) { $text.Substring(0, 4000) } else { $text }
    }
}
Set-Location $Work
$results | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $Work 'results.json')
'@
        Set-Content -Path (Join-Path $work 'runner.ps1') -Value $runner
        # A fresh pwsh with a temporary HOME (so ~ and the default request log are inside it) and the stand-ins.
        $saved = @{}
        $env = @{
            HOME = Join-Path $work 'home'; XDG_STATE_HOME = $null; XDG_CONFIG_HOME = $null; XDG_DATA_HOME = $null
            CLOUD_API_URL = $cloud.ChatUri; CLOUD_API_KEY = 'sk-stand-in-not-a-key'; CLOUD_PROVIDER = $null; CLOUD_MODEL = $null
            OLLAMA_URL = $ollama.BaseUri; OLLAMA_MODEL = $null; OLLAMACONTINUITY_STATE_DIR = Join-Path $work 'state'
        }
        foreach ($k in $env.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $env[$k]) }
        try {
            $script:runnerOutput = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -File (Join-Path $work 'runner.ps1') -Work $work -Manifest $manifest 2>&1 | Out-String
        }
        finally {
            foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
        }
        $script:results = @{}
        if (Test-Path (Join-Path $work 'results.json')) {
            foreach ($r in @(Get-Content (Join-Path $work 'results.json') -Raw | ConvertFrom-Json)) { $results[$r.Name] = $r }
            if ($env:OC_HELP_TIMES) { $results.Values | Sort-Object Ms -Descending | Select-Object -First 8 Name, Ms | Out-String | Write-Host }
        }
    }
    AfterAll {
        $cloud, $ollama | Stop-FakeServer
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }

    It 'finds every example: three or more per cmdlet, and the about topic''s' {
        $examples.Count | Should -BeGreaterOrEqual 45
        ($examples | Where-Object Name -Like 'about_*').Count | Should -BeGreaterOrEqual 1
    }

    It '<Name>: <Title>' -ForEach $examples {
        if ($Skip) { Set-ItResult -Skipped -Because $Skip; return }
        if ($Needs -eq 'Root' -and -not $isRoot) { Set-ItResult -Skipped -Because 'it reads the host firewall or systemd: runs only as root on Linux'; return }
        if ($Needs -eq 'Linux' -and -not $IsLinux) { Set-ItResult -Skipped -Because 'the example names the Linux path of the request log'; return }
        $results.ContainsKey($Name) | Should -BeTrue -Because "the runner must have run it: $runnerOutput"
        $r = $results[$Name]
        $ids = @($r.Errors | ForEach-Object { ($_.Id -split ',')[0] })
        $unexpected = @($r.Errors | Where-Object { $Errors -notcontains ($_.Id -split ',')[0] } | ForEach-Object { "$($_.Id): $($_.Message)" })
        $unexpected | Should -BeNullOrEmpty -Because "it must run without error:`n$($r.Code)`n---`n$($r.Output)"
        foreach ($id in $Errors) { $ids | Should -Contain $id -Because 'the example shows this error on purpose' }
        if ($Shows) { $r.Output | Should -Match $Shows -Because 'the example''s output shows what its remarks promise' }
    }
}

Describe 'The help text' {
    It 'has no example that starts another shell inside PowerShell code (sudo pwsh)' {
        foreach ($f in Get-ChildItem (Join-Path $repoRoot 'src/OllamaContinuity/Help') -Filter *.maml.xml) {
            [xml]$x = "<r xmlns:maml='m' xmlns:dev='d' xmlns:command='c'>" + (Get-Content -Raw $f.FullName) + '</r>'
            foreach ($code in $x.SelectNodes('//*[local-name()="code"]')) {
                $code.InnerText | Should -Not -Match '(?m)^\s*sudo ' -Because "$($f.Name): put 'sudo pwsh' in the remarks"
                $code.InnerText | Should -Not -Match 'Write-EventLog' -Because 'Write-EventLog does not exist in PowerShell 7'
                if ($code.InnerText -match 'Send-MailMessage') { $code.InnerText | Should -Match 'Send-MailMessage[^\n]*-From ' }
                if ($code.InnerText -match 'Get-Secret') { $code.InnerText | Should -Match 'SecretManagement' }
            }
        }
    }

    It 'Get-Help ./build.ps1 -Full shows the full comment-based help (a blank line after #Requires)' {
        $lines = Get-Content (Join-Path $repoRoot 'build.ps1')
        $lines[0] | Should -Match '^#Requires'
        $lines[1] | Should -BeNullOrEmpty
        $help = Get-Help (Join-Path $repoRoot 'build.ps1') -Full
        $help.Synopsis | Should -Match 'Builds the OllamaContinuity module'
        ($help.description | Out-String) | Should -Match 'front door'
        $params = @($help.parameters.parameter)
        foreach ($p in 'Configuration', 'Clean', 'Test', 'SkipPester', 'Package', 'Demo') {
            ($params | Where-Object Name -EQ $p).description | Out-String | Should -Not -BeNullOrEmpty -Because "-$p is documented"
        }
        @($help.examples.example).Count | Should -BeGreaterOrEqual 4
    }
}

Describe 'Error advice for this operating system' {
    BeforeAll { Import-Module -Force $manifest }

    It 'AllBackendsFailed names a reachability check that exists here' {
        $refused = 'http://127.0.0.1:9'
        $err = $null
        Invoke-AiRequest 'hello' -CloudUri "$refused/v1/chat/completions" -CloudApiKey (ConvertTo-SecureString 'sk-x' -AsPlainText -Force) -OllamaUri $refused -LogPath (New-TestLogPath) -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'AllBackendsFailed,*'
        $advice = $err[0].ErrorDetails.RecommendedAction
        if ($IsWindows) { $advice | Should -Match 'Test-NetConnection' }
        else {
            $advice | Should -Not -Match 'Test-NetConnection' -Because 'Test-NetConnection does not exist on Linux or macOS'
            $advice | Should -Match 'curl'
        }
    }

    It 'elevation advice names the way to elevate on this system' {
        $advice = [OllamaContinuity.Internal.Advice]::Elevate
        if ($IsWindows) { $advice | Should -Match 'administrator'; $advice | Should -Not -Match 'sudo' }
        else { $advice | Should -Match 'sudo pwsh'; $advice | Should -Not -Match 'administrator' }
    }

    It 'no advice in the cmdlets hard-codes a command of one system only' {
        $src = Get-ChildItem (Join-Path $repoRoot 'src/OllamaContinuity/Commands') -Filter *.cs | Get-Content -Raw
        ($src | Select-String 'RecommendedAction = "[^"]*(Test-NetConnection|sudo )').Matches | Should -BeNullOrEmpty
    }
}
