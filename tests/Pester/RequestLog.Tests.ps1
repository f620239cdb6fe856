#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# Get-AiRequestLog reads back the log that Invoke-AiRequest writes: requests sent for real to fake servers on
# 127.0.0.1 (a healthy cloud, then a cloud answering 503), with one damaged line in the middle of the file.

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')
    $script:key = ConvertTo-SecureString -String 'sk-PESTER-REQLOG-4be1' -AsPlainText -Force
    $script:cmdId = 'OllamaContinuity.Commands.GetAiRequestLogCommand'
    $script:log = New-TestLogPath

    $healthy = Start-FailoverFixture -ApiKey $key
    try {
        $common = $healthy.Common
        $null = 'first', 'second' | Invoke-AiRequest @common -LogPath $log -Workflow nightly-a
    }
    finally { $healthy | Stop-FailoverFixture }

    # A line cut short by a crash, between the healthy and the failing requests.
    Add-Content -Path $log -Value '{"requestId":"broken","timestamp":"2026-'
    $script:startOfOutage = [DateTime]::Now

    $failing = Start-FailoverFixture -CloudFault 'status:503' -ApiKey $key
    try {
        $common = $failing.Common
        $null = 'third', 'fourth' | Invoke-AiRequest @common -LogPath $log -Workflow nightly-b -WarningAction SilentlyContinue
    }
    finally { $failing | Stop-FailoverFixture }
}

AfterAll {
    Remove-Item -Recurse -Force (Split-Path $script:log) -ErrorAction SilentlyContinue
}

Describe 'Get-AiRequestLog' {
    Context 'module surface' {
        It 'is exported with its output type, help and examples' {
            $cmd = Get-Command Get-AiRequestLog -Module OllamaContinuity
            $cmd.CommandType | Should -Be 'Cmdlet'
            $cmd.OutputType.Name | Should -Contain 'OllamaContinuity.Failover.RequestLogEntry'
            ($cmd.Parameters['Backend'].Attributes.ValidValues -join ',') | Should -Be 'Cloud,Ollama,None'
            @((Get-Help Get-AiRequestLog -Full).examples.example).Count | Should -BeGreaterOrEqual 3
        }
    }

    Context 'reading the whole log' {
        BeforeAll {
            $all = Get-AiRequestLog -Path $log -WarningVariable warned -WarningAction SilentlyContinue
        }

        It 'returns one typed object per request, oldest first' {
            $all.Count | Should -Be 4
            $all[0].pstypenames[0] | Should -Be 'OllamaContinuity.Failover.RequestLogEntry'
            $all.Workflow | Should -Be @('nightly-a', 'nightly-a', 'nightly-b', 'nightly-b')
            $all.Backend | Should -Be @('Cloud', 'Cloud', 'Ollama', 'Ollama')
            $all[2].FailoverReason | Should -Be 'ServerError'
            # The cloud's 503 is retried once before the failover.
            $all[2].Attempts.Count | Should -Be 3
            $all[2].Attempts[0].StatusCode | Should -Be 503
            $all[2].Route | Should -Match '^Cloud:ServerError/503\(\d+ms\) -> Cloud:ServerError/503\(\d+ms\) -> Ollama:Success\(\d+ms\)$'
            $all[2].FailedOver | Should -BeTrue
        }

        It 'skips the damaged line with a warning that names its line number' {
            @($warned).Count | Should -Be 1
            "$($warned[0])" | Should -Match ('^Skipped line 3 of ' + [regex]::Escape($log))
            $all.LineNumber | Should -Be @(1, 2, 4, 5)
        }

        It 'shows a table of time, workflow, backend, reason, latency and route' {
            $text = $all | Out-String -Width 200
            $text | Should -Match '(?m)^Timestamp\s+Workflow\s+Backend\s+FailoverReason\s+LatencyMs\s+Route'
            $text | Should -Match 'nightly-b\s+Ollama\s+ServerError\s+\d+\s+Cloud:ServerError/503'
        }

        It 'exports to CSV without type names' {
            (($all | ConvertTo-Csv -NoTypeInformation) -join "`n") | Should -Not -Match 'System\.[A-Z]|OllamaContinuity\.Failover\.'
        }
    }

    Context 'filters' {
        It '-Backend <Backend> gives <Count>' -ForEach @(
            @{ Backend = 'Cloud'; Count = 2 }
            @{ Backend = 'Ollama'; Count = 2 }
            @{ Backend = 'None'; Count = 0 }
        ) {
            @(Get-AiRequestLog -Path $log -Backend $Backend -WarningAction SilentlyContinue).Count | Should -Be $Count
        }

        It '-FailoverReason * is every request the cloud did not serve; a named reason matches exactly' {
            @(Get-AiRequestLog -Path $log -FailoverReason * -WarningAction SilentlyContinue).Workflow | Should -Be @('nightly-b', 'nightly-b')
            @(Get-AiRequestLog -Path $log -FailoverReason ServerError -WarningAction SilentlyContinue).Count | Should -Be 2
            @(Get-AiRequestLog -Path $log -FailoverReason RateLimited -WarningAction SilentlyContinue).Count | Should -Be 0
        }

        It '-Workflow takes wildcards' {
            @(Get-AiRequestLog -Path $log -Workflow nightly-a -WarningAction SilentlyContinue).Count | Should -Be 2
            @(Get-AiRequestLog -Path $log -Workflow 'NIGHTLY-*' -WarningAction SilentlyContinue).Count | Should -Be 4
        }

        It '-Since and -Until cut by time' {
            @(Get-AiRequestLog -Path $log -Since $startOfOutage -WarningAction SilentlyContinue).Workflow | Should -Be @('nightly-b', 'nightly-b')
            @(Get-AiRequestLog -Path $log -Until $startOfOutage -WarningAction SilentlyContinue).Workflow | Should -Be @('nightly-a', 'nightly-a')
            @(Get-AiRequestLog -Path $log -Since (Get-Date).AddHours(1) -WarningAction SilentlyContinue).Count | Should -Be 0
        }

        It '-Last keeps the last matching entries' {
            $last = Get-AiRequestLog -Path $log -Backend Cloud -Last 1 -WarningAction SilentlyContinue
            @($last).Count | Should -Be 1
            $last.LineNumber | Should -Be 2
        }

        It 'answers "did last night''s batch fail over, and why" in one pipeline' {
            $groups = Get-AiRequestLog -Path $log -Workflow nightly-* -WarningAction SilentlyContinue | Group-Object Backend, FailoverReason | Sort-Object Name
            ($groups | ForEach-Object { '{0}={1}' -f $_.Name, $_.Count }) -join '; ' | Should -Be 'Cloud, =2; Ollama, ServerError=2'
        }
    }

    Context 'errors' {
        It 'a missing -Path is RequestLogNotFound' {
            { Get-AiRequestLog -Path (Join-Path $TestDrive 'none.jsonl') -ErrorAction Stop } | Should -Throw -ErrorId "RequestLogNotFound,$cmdId"
        }

        It '-Until before -Since is UntilBeforeSince' {
            { Get-AiRequestLog -Path $log -Since (Get-Date) -Until (Get-Date).AddDays(-1) -ErrorAction Stop } | Should -Throw -ErrorId "UntilBeforeSince,$cmdId"
        }

        It 'an unknown backend is refused before reading' {
            { Get-AiRequestLog -Path $log -Backend Azure -ErrorAction Stop } | Should -Throw -ErrorId "ParameterArgumentValidationError,$cmdId"
        }

        It 'the default log is OLLAMACONTINUITY_LOG_PATH, and a missing default log is no error' {
            $saved = $env:OLLAMACONTINUITY_LOG_PATH
            try {
                $env:OLLAMACONTINUITY_LOG_PATH = $log
                @(Get-AiRequestLog -WarningAction SilentlyContinue).Count | Should -Be 4
                $env:OLLAMACONTINUITY_LOG_PATH = Join-Path $TestDrive 'not-yet.jsonl'
                $verbose = Get-AiRequestLog -Verbose 4>&1
                @($verbose | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }).Count | Should -Be 0
                "$verbose" | Should -Match 'No request log yet'
            }
            finally { $env:OLLAMACONTINUITY_LOG_PATH = $saved }
        }
    }
}
