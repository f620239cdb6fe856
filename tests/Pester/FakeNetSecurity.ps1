# A stateful stand-in for the NetSecurity cmdlets Windows Defender Firewall is driven with, as global functions in
# the current session, so that the module's Windows backend can run end to end on any OS: the module calls the
# cmdlets by name in this session and these answer. Like Windows, the address filter shows IPv4 subnets with a
# dotted mask (10.8.0.0/255.255.255.0), a Get with no match writes an error, and every call is logged.
# Dot-source it, then look at $global:FakeNetSecurity.Rules and $global:FakeNetSecurity.Calls.

$global:FakeNetSecurity = @{
    Calls    = [System.Collections.Generic.List[string]]::new()
    Rules    = [System.Collections.Generic.List[hashtable]]::new()
    Profiles = @(
        [pscustomobject]@{ Name = 'Domain'; Enabled = 'True'; DefaultInboundAction = 'NotConfigured' }
        [pscustomobject]@{ Name = 'Private'; Enabled = 'True'; DefaultInboundAction = 'Block' }
        [pscustomobject]@{ Name = 'Public'; Enabled = 'True'; DefaultInboundAction = 'Block' }
    )
}

function global:Add-FakeFirewallRule {
    param([string] $Name, [string] $Group = '', [string] $Enabled = 'True', [string] $Action = 'Allow', [string] $Protocol = 'TCP',
        [string[]] $LocalPort = @('Any'), [string[]] $RemoteAddress = @('Any'), [string] $Program = 'Any', [string] $Description = '')
    $global:FakeNetSecurity.Rules.Add(@{ Name = $Name; Group = $Group; Enabled = $Enabled; Action = $Action; Direction = 'Inbound'; Protocol = $Protocol
            LocalPort = $LocalPort; RemoteAddress = $RemoteAddress; Program = $Program; Description = $Description })
}

function global:ConvertTo-FakeWindowsAddress([string] $a) {
    if ($a -match '^(\d+\.\d+\.\d+\.\d+)/(\d+)$') {
        $bits = [int]$Matches[2]
        if ($bits -eq 32) { return $Matches[1] }
        $mask = foreach ($i in 0..3) { $n = [math]::Max(0, [math]::Min(8, $bits - 8 * $i)); (0xFF -shl (8 - $n)) -band 0xFF }
        return '{0}/{1}' -f $Matches[1], ($mask -join '.')
    }
    $a
}

function global:New-FakeError([string] $Message) {
    [System.Management.Automation.ErrorRecord]::new([System.Exception]::new($Message), 'CmdletizationQuery_NotFound', 'ObjectNotFound', $null)
}

function global:Get-NetFirewallRule {
    [CmdletBinding()]
    param([string] $Group, [string] $Direction, [string] $Action, [string] $Name, [string] $Enabled)
    $global:FakeNetSecurity.Calls.Add("Get-NetFirewallRule $($PSBoundParameters.Keys -join ',')")
    $found = @($global:FakeNetSecurity.Rules | Where-Object {
            (-not $Group -or $_.Group -eq $Group) -and (-not $Direction -or $_.Direction -eq $Direction) -and
            (-not $Action -or $_.Action -eq $Action) -and (-not $Name -or $_.Name -eq $Name) -and (-not $Enabled -or $_.Enabled -eq $Enabled) })
    if ($found.Count -eq 0) { $PSCmdlet.WriteError((New-FakeError "No MSFT_NetFirewallRule objects found with property matching the criteria.")); return }
    $found | ForEach-Object { [pscustomobject]@{ Name = $_.Name; DisplayName = $_.Name; Group = $_.Group; Enabled = $_.Enabled; Action = $_.Action; Direction = $_.Direction; Description = $_.Description } }
}

function global:Get-NetFirewallPortFilter {
    [CmdletBinding()]
    param([switch] $All)
    $global:FakeNetSecurity.Calls.Add('Get-NetFirewallPortFilter')
    $global:FakeNetSecurity.Rules | ForEach-Object { [pscustomobject]@{ InstanceID = $_.Name; Protocol = $_.Protocol; LocalPort = $_.LocalPort } }
}

function global:Get-NetFirewallApplicationFilter {
    [CmdletBinding()]
    param([switch] $All)
    $global:FakeNetSecurity.Calls.Add('Get-NetFirewallApplicationFilter')
    $global:FakeNetSecurity.Rules | ForEach-Object { [pscustomobject]@{ InstanceID = $_.Name; Program = $_.Program } }
}

function global:Get-NetFirewallAddressFilter {
    [CmdletBinding()]
    param([switch] $All)
    $global:FakeNetSecurity.Calls.Add('Get-NetFirewallAddressFilter')
    $global:FakeNetSecurity.Rules | ForEach-Object { [pscustomobject]@{ InstanceID = $_.Name; RemoteAddress = @($_.RemoteAddress | ForEach-Object { ConvertTo-FakeWindowsAddress $_ }) } }
}

function global:Get-NetFirewallProfile {
    [CmdletBinding()]
    param()
    $global:FakeNetSecurity.Calls.Add('Get-NetFirewallProfile')
    $global:FakeNetSecurity.Profiles
}

function global:New-NetFirewallRule {
    [CmdletBinding()]
    param([string] $Name, [string] $DisplayName, [string] $Description, [string] $Group, [string] $Direction, [string] $Action,
        [string] $Protocol, [string[]] $LocalPort, [string[]] $RemoteAddress, [string] $Profile, [string] $Enabled)
    $global:FakeNetSecurity.Calls.Add("New-NetFirewallRule $Name RemoteAddress=$($RemoteAddress -join ',')")
    if ($global:FakeNetSecurity.Rules | Where-Object Name -eq $Name) { $PSCmdlet.WriteError((New-FakeError "Cannot create a file when that file already exists.")); return }
    Add-FakeFirewallRule -Name $Name -Group $Group -Enabled $Enabled -Action $Action -Protocol $Protocol -LocalPort $LocalPort -RemoteAddress $RemoteAddress -Description $Description
}

function global:Set-NetFirewallRule {
    [CmdletBinding()]
    param([string] $Name, [string] $Enabled, [string[]] $RemoteAddress, [string] $Description)
    $global:FakeNetSecurity.Calls.Add("Set-NetFirewallRule $Name $(($PSBoundParameters.Keys -ne 'Name') -join ',')")
    $rule = $global:FakeNetSecurity.Rules | Where-Object Name -eq $Name
    if (-not $rule) { $PSCmdlet.WriteError((New-FakeError "No MSFT_NetFirewallRule objects found with property 'InstanceID' equal to '$Name'.")); return }
    if ($PSBoundParameters.ContainsKey('Enabled')) { $rule.Enabled = $Enabled }
    if ($PSBoundParameters.ContainsKey('RemoteAddress')) { $rule.RemoteAddress = $RemoteAddress }
    if ($PSBoundParameters.ContainsKey('Description')) { $rule.Description = $Description }
}

function global:Remove-NetFirewallRule {
    [CmdletBinding()]
    param([string] $Name)
    $global:FakeNetSecurity.Calls.Add("Remove-NetFirewallRule $Name")
    $rule = $global:FakeNetSecurity.Rules | Where-Object Name -eq $Name
    if (-not $rule) { $PSCmdlet.WriteError((New-FakeError "No MSFT_NetFirewallRule objects found with property 'InstanceID' equal to '$Name'.")); return }
    $null = $global:FakeNetSecurity.Rules.Remove($rule)
}
