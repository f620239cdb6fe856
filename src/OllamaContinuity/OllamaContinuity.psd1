@{
    RootModule           = 'OllamaContinuity.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '5b0f3c8e-7c1e-4d0a-9a55-2f1f0c6a7e41'
    Author               = 'OllamaContinuity'
    CompanyName          = 'OllamaContinuity'
    Copyright            = '(c) OllamaContinuity contributors. MIT License.'
    Description          = 'Keeps AI workflows running when the cloud AI provider fails: failover from OpenAI/Anthropic to local Ollama, contingency mode, firewall rules and hardening for the Ollama host, exposure audits and failover drills.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @(
        'Formats/Failover.Format.ps1xml'
        'Formats/Exposure.Format.ps1xml'
        'Formats/Hardening.Format.ps1xml'
        'Formats/Firewall.Format.ps1xml'
        'Formats/Contingency.Format.ps1xml'
        'Formats/RequestLog.Format.ps1xml'
        'Formats/Deserialized.Format.ps1xml'
        'Formats/GatewayService.Format.ps1xml'
    )
    CmdletsToExport      = @(
        'Invoke-AiRequest'
        'Set-OllamaHardening'
        'Test-OllamaExposure'
        'Set-OllamaFirewallRule'
        'Get-OllamaFirewallRule'
        'Remove-OllamaFirewallRule'
        'Enable-AiContingency'
        'Disable-AiContingency'
        'Get-AiContingency'
        'Get-AiContingencyLog'
        'Get-AiRequestLog'
        'Set-AiContinuityAlert'
        'Get-AiContinuityAlert'
        'Start-FailoverDrill'
        'Stop-FailoverDrill'
        'Start-AiGateway'
        'Stop-AiGateway'
        'Get-AiGateway'
        'Install-AiGateway'
        'Uninstall-AiGateway'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('AI', 'Ollama', 'OpenAI', 'Anthropic', 'Failover', 'Continuity', 'Firewall', 'Security', 'Linux', 'Windows', 'macOS')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ReleaseNotes = 'See README.md.'
        }
    }
}
