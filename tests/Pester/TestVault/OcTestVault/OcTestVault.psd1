# TEST ONLY: a SecretManagement extension vault for the gateway's tests. It keeps secrets as plain JSON in the folder
# given at registration (-VaultParameters @{ Path = ... }), a temporary folder the test deletes. Never use it for real secrets.
@{
    ModuleVersion     = '1.0'
    GUID              = '6f0e3b51-2d4c-4c0e-9a4e-3c6a8d7f1b20'
    NestedModules     = @('./OcTestVault.Extension')
    CmdletsToExport   = @()
    FunctionsToExport = @()
    VariablesToExport = @()
    AliasesToExport   = @()
}
