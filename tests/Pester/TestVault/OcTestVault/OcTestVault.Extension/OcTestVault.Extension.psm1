# TEST ONLY: the extension vault contract of Microsoft.PowerShell.SecretManagement (Get-Secret, Set-Secret,
# Remove-Secret, Get-SecretInfo, Test-SecretVault with -VaultName and -AdditionalParameters). Secrets are kept as
# plain JSON in <Path>/secrets.json: strings and hashtables (a SecureString is stored as its plain text).

function Get-StorePath([hashtable] $AdditionalParameters) {
    $path = $AdditionalParameters['Path']
    if ([string]::IsNullOrEmpty($path)) { throw 'OcTestVault needs -VaultParameters @{ Path = <folder> }.' }
    Join-Path $path 'secrets.json'
}

function Read-Store([hashtable] $AdditionalParameters) {
    $file = Get-StorePath $AdditionalParameters
    if (Test-Path -LiteralPath $file) { Get-Content -LiteralPath $file -Raw | ConvertFrom-Json -AsHashtable } else { @{} }
}

function Write-Store([hashtable] $Store, [hashtable] $AdditionalParameters) {
    $Store | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Get-StorePath $AdditionalParameters) -NoNewline
}

function Get-Secret {
    param ([string] $Name, [string] $VaultName, [hashtable] $AdditionalParameters)
    $store = Read-Store $AdditionalParameters
    if (-not $store.ContainsKey($Name)) { return }
    $value = $store[$Name]
    if ($value -is [hashtable]) { return @{} + $value }
    return [string] $value
}

function Set-Secret {
    param ([string] $Name, [object] $Secret, [string] $VaultName, [hashtable] $AdditionalParameters)
    $store = Read-Store $AdditionalParameters
    $plain = { param($v) if ($v -is [securestring]) { [System.Net.NetworkCredential]::new('', $v).Password } else { $v } }
    if ($Secret -is [hashtable]) {
        $copy = @{}
        foreach ($k in $Secret.Keys) { $copy[$k] = & $plain $Secret[$k] }
        $store[$Name] = $copy
    } else {
        $store[$Name] = [string] (& $plain $Secret)
    }
    Write-Store $store $AdditionalParameters
    return $true
}

function Remove-Secret {
    param ([string] $Name, [string] $VaultName, [hashtable] $AdditionalParameters)
    $store = Read-Store $AdditionalParameters
    if (-not $store.ContainsKey($Name)) { Write-Error "The secret $Name does not exist."; return $false }
    $store.Remove($Name)
    Write-Store $store $AdditionalParameters
    return $true
}

function Get-SecretInfo {
    param ([string] $Filter, [string] $VaultName, [hashtable] $AdditionalParameters)
    $pattern = [WildcardPattern]::new($(if ($Filter) { $Filter } else { '*' }))
    $store = Read-Store $AdditionalParameters
    foreach ($name in ($store.Keys | Sort-Object)) {
        if (-not $pattern.IsMatch($name)) { continue }
        $type = if ($store[$name] -is [hashtable]) { 'Hashtable' } else { 'String' }
        [Microsoft.PowerShell.SecretManagement.SecretInformation]::new($name, $type, $VaultName)
    }
}

function Test-SecretVault {
    param ([string] $VaultName, [hashtable] $AdditionalParameters)
    Test-Path -LiteralPath $AdditionalParameters['Path'] -PathType Container
}
