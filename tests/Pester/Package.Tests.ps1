#Requires -Version 7.4
#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }

# ./build.ps1 -Package makes a .nupkg that PSResourceGet installs from a local file repository, and the installed
# module imports and runs in a fresh pwsh. The repository is registered for this file only and unregistered after.

BeforeAll {
    $script:repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:moduleDir = Split-Path (Join-Path $repoRoot 'out/OllamaContinuity/OllamaContinuity.psd1')
    $script:work = Join-Path ([System.IO.Path]::GetTempPath()) ("oc-pester-pkg-" + [guid]::NewGuid().ToString('n'))
    $script:feed = Join-Path $work 'feed'
    $script:installed = Join-Path $work 'modules'
    $script:repoName = 'OcPesterFeed' + [guid]::NewGuid().ToString('n').Substring(0, 8)
    New-Item -ItemType Directory -Path $feed, $installed, (Join-Path $work 'pack') | Out-Null
    Import-Module Microsoft.PowerShell.PSResourceGet
    $script:version = (Import-PowerShellDataFile (Join-Path $moduleDir 'OllamaContinuity.psd1')).ModuleVersion
}

AfterAll {
    Unregister-PSResourceRepository -Name $repoName -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Packaging the module' {
    It 'PSResourceGet ships with this PowerShell' {
        Get-Module -ListAvailable Microsoft.PowerShell.PSResourceGet | Should -Not -BeNullOrEmpty
    }

    It 'build.ps1 -Package packs the laid-out module the way build.ps1 does (Compress-PSResource) into a .nupkg' {
        # The same call as build.ps1 -Package, into a temporary folder (a full build.ps1 run would rebuild).
        (Get-Content -Raw (Join-Path $repoRoot 'build.ps1')) | Should -Match 'Compress-PSResource -Path \$moduleDir -DestinationPath \$out'
        Compress-PSResource -Path $moduleDir -DestinationPath (Join-Path $work 'pack')
        $script:nupkg = Join-Path $work "pack/OllamaContinuity.$version.nupkg"
        $nupkg | Should -Exist
        $entries = [System.IO.Compression.ZipFile]::OpenRead($nupkg)
        try { $names = $entries.Entries.FullName } finally { $entries.Dispose() }
        $names | Should -Contain 'OllamaContinuity.psd1'
        $names | Should -Contain 'OllamaContinuity.dll'
        $names | Should -Contain 'OllamaContinuity.dll-Help.xml'
        $names | Should -Contain 'Dependencies/OllamaContinuity.Engine.dll'
        ($names -like 'Formats/*.Format.ps1xml').Count | Should -BeGreaterOrEqual 5
    }

    It 'build.ps1 -Package also packs the engine for .NET applications into OllamaContinuity.Engine.<version>.nupkg' {
        # The same dotnet pack as build.ps1 -Package (EnginePackageTests builds and runs an app against the package).
        (Get-Content -Raw (Join-Path $repoRoot 'build.ps1')) | Should -Match ([regex]::Escape("dotnet @('pack', (Join-Path `$root 'src/OllamaContinuity.Engine.AI/OllamaContinuity.Engine.AI.csproj')"))
        $output = & dotnet pack (Join-Path $repoRoot 'src/OllamaContinuity.Engine.AI/OllamaContinuity.Engine.AI.csproj') --configuration Release --nologo --output (Join-Path $work 'pack') -p:DeterministicTimestamp=1767225600 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        $enginePkg = Join-Path $work "pack/OllamaContinuity.Engine.$version.nupkg"
        $enginePkg | Should -Exist
        $zip = [System.IO.Compression.ZipFile]::OpenRead($enginePkg)
        try { $names = $zip.Entries.FullName } finally { $zip.Dispose() }
        $names | Should -Contain 'lib/net8.0/OllamaContinuity.Engine.dll'
        $names | Should -Contain 'lib/net8.0/OllamaContinuity.Engine.AI.dll'
    }

    It 'is published to a temporary trusted file repository' {
        Register-PSResourceRepository -Name $repoName -Uri $feed -Trusted
        Publish-PSResource -NupkgPath $nupkg -Repository $repoName
        Join-Path $feed "OllamaContinuity.$version.nupkg" | Should -Exist
        (Find-PSResource -Name OllamaContinuity -Repository $repoName).Version.ToString() | Should -Be $version
    }

    It 'installs from it into a temporary module path, imports in a fresh pwsh and runs a cmdlet' {
        Save-PSResource -Name OllamaContinuity -Repository $repoName -Path $installed -TrustRepository
        Join-Path $installed "OllamaContinuity/$version/OllamaContinuity.psd1" | Should -Exist
        $script = @"
`$ErrorActionPreference = 'Stop'
`$env:OLLAMACONTINUITY_STATE_DIR = '$(Join-Path $work 'state')'
`$env:PSModulePath = '$installed' + [IO.Path]::PathSeparator + `$env:PSModulePath
"@ + "`n" + @'
Import-Module OllamaContinuity
$m = Get-Module OllamaContinuity
"BASE=$($m.ModuleBase)"
"CMDLETS=$($m.ExportedCmdlets.Count)"
$null = Enable-AiContingency -Workflow package-check -Scope User -Reason 'installed from the nupkg'
"CONTINGENCY=$((Get-AiContingency -Workflow package-check | Where-Object Source -EQ 'User').Active)"
"HELP=$((Get-Help Invoke-AiRequest).Synopsis)"
'@
        $out = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $out | Should -Contain "BASE=$(Join-Path $installed "OllamaContinuity/$version")"
        $out | Should -Contain "CMDLETS=$((Import-PowerShellDataFile (Join-Path $moduleDir 'OllamaContinuity.psd1')).CmdletsToExport.Count)"
        $out | Should -Contain 'CONTINGENCY=True'
        ($out -match '^HELP=.*fails over to local Ollama').Count | Should -Be 1
    }
}

Describe 'The source manifest' {
    It 'is not at the repository root, where it could not import' {
        Join-Path $repoRoot 'OllamaContinuity.psd1' | Should -Not -Exist
    }

    It 'every .psd1 that names OllamaContinuity.dll sits in a folder that holds the dll, or is the source copied by the build' {
        $manifests = Get-ChildItem -Path $repoRoot -Recurse -Filter 'OllamaContinuity.psd1' -File |
            Where-Object { $_.FullName -notmatch '[\\/](bin|obj)[\\/]' -and $_.FullName -notlike "$work*" }
        foreach ($m in $manifests) {
            $isSource = $m.FullName -eq (Join-Path $repoRoot 'src/OllamaContinuity/OllamaContinuity.psd1')
            if (-not $isSource) { Join-Path $m.DirectoryName 'OllamaContinuity.dll' | Should -Exist -Because $m.FullName }
        }
        Join-Path $repoRoot 'src/OllamaContinuity/OllamaContinuity.psd1' | Should -Exist
        (Get-Content -Raw (Join-Path $repoRoot 'src/OllamaContinuity/OllamaContinuity.csproj')) | Should -Match 'ModuleManifest Include="\$\(MSBuildThisFileDirectory\)OllamaContinuity.psd1"'
    }
}
