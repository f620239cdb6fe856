using System.Management.Automation;

namespace OllamaContinuity.Internal;

/// <summary>The -Port and -Backend parameters of Get- and Remove-OllamaFirewallRule (BCL types only: no engine type here).</summary>
public abstract class FirewallRuleCmdletBase : AsyncCmdlet
{
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 11434;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet("Auto", "Ufw", "Firewalld", "Nftables", "Iptables", "WindowsFirewall", "Pf")]
    public string Backend { get; set; } = "Auto";
}
