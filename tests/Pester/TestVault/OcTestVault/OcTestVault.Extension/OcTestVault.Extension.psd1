@{
    ModuleVersion     = '1.0'
    RootModule        = 'OcTestVault.Extension.psm1'
    FunctionsToExport = @('Get-Secret', 'Set-Secret', 'Remove-Secret', 'Get-SecretInfo', 'Test-SecretVault')
}
