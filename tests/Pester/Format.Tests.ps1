#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# The exposure table at 120 columns: no line longer, and no word cut in the middle (PowerShell's own table wrap cuts
# at the column width; the view wraps Detail and Remediation at spaces with TableText.Wrap).

BeforeAll {
    Import-Module -Force (Join-Path $PSScriptRoot '../../out/OllamaContinuity/OllamaContinuity.psd1')
    Import-Module -Force (Join-Path $PSScriptRoot 'TestHelpers.psm1')

    $script:ollama = Start-FakeServer -Api Ollama -Name exposed
    $script:port = ([uri]$ollama.BaseUri).Port
    # A staged host (as in Exposure.Tests.ps1): Ollama on 0.0.0.0 with OLLAMA_ORIGINS=*, long paths in every detail.
    $script:root = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
    New-Item -ItemType Directory -Path (Join-Path $root 'etc/systemd/system'), (Join-Path $root 'proc/net') -Force | Out-Null
    Set-Content -Path (Join-Path $root 'etc/systemd/system/ollama.service') -NoNewline -Value (
        "[Service]`nExecStart=/usr/local/bin/ollama serve`nUser=ollama`nEnvironment=`"OLLAMA_HOST=0.0.0.0`" `"OLLAMA_ORIGINS=*`"`n")
    Set-Content -Path (Join-Path $root 'proc/net/tcp') -NoNewline -Value (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode`n" +
        ('   0: 00000000:{0:X4} 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1 0 100 0 0 10 0' -f $port) + "`n")

    function Get-PlainWord([string] $Text) {
        # The words a reader must see whole: no path or URL punctuation, where a long token may break.
        @($Text -split '\s+' | Where-Object { $_ -and $_ -notmatch '[/\\\-.,=:;]' })
    }
}

AfterAll { $ollama | Stop-FakeServer }

Describe 'The exposure table at 120 columns' {
    BeforeAll {
        $script:findings = @(Test-OllamaExposure -Root $root -Port $port) + @(Test-OllamaExposure -Target 127.0.0.1 -Port $port -TimeoutMs 1000)
        $script:text = $findings | Out-String -Width 120
        $script:tokens = @($text -split '\s+' | Where-Object { $_ })
    }

    It 'has findings with long details to show' {
        $findings.Count | Should -BeGreaterOrEqual 5
        ($findings | Where-Object { $_.Detail.Length -gt 100 }).Count | Should -BeGreaterOrEqual 3
    }

    It 'fits 120 columns' {
        foreach ($line in $text -split "`r?`n") { $line.Length | Should -BeLessOrEqual 120 -Because "'$line'" }
    }

    It 'keeps every word of Detail and Remediation whole' {
        $seen = [System.Collections.Generic.HashSet[string]]::new([string[]]$tokens)
        $words = foreach ($f in $findings) { (Get-PlainWord $f.Detail) + (Get-PlainWord $f.Remediation) }
        $words.Count | Should -BeGreaterThan 100
        @($words | Where-Object { -not $seen.Contains($_) }) | Should -BeNullOrEmpty -Because 'every word must appear whole'
    }
}

Describe 'TableText.Wrap' {
    It 'breaks at spaces within the width and loses no text (<Width> columns)' -ForEach @(@{ Width = 12 }, @{ Width = 37 }, @{ Width = 46 }) {
        $s = 'Reachable beyond loopback: listening on 0.0.0.0:39837 (OLLAMA_HOST from /tmp/41f81c8557a440e7b05c47a75067de97/etc/systemd/system/ollama.service).'
        $wrapped = [OllamaContinuity.Internal.TableText]::Wrap($s, $Width)
        foreach ($line in $wrapped -split "`n") { $line.Length | Should -BeLessOrEqual $Width }
        ($wrapped -replace "`n", '' -replace ' ', '') | Should -Be ($s -replace ' ', '')
        foreach ($word in Get-PlainWord $s) { if ($word.Length -le $Width) { ($wrapped -split '\s+') | Should -Contain $word } }
    }

    It 'leaves short text and empty values alone' {
        [OllamaContinuity.Internal.TableText]::Wrap('Pass', 46) | Should -Be 'Pass'
        [OllamaContinuity.Internal.TableText]::Wrap($null, 46) | Should -Be ''
    }
}
