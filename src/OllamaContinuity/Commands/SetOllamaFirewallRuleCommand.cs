using System.Management.Automation;
using OllamaContinuity.Firewall;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Allows TCP to the Ollama port from the given sources only (and loopback), on whatever firewall the host uses.</para>
/// </summary>
[Cmdlet(VerbsCommon.Set, "OllamaFirewallRule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType("OllamaContinuity.Firewall.FirewallRuleInfo")]
public sealed class SetOllamaFirewallRuleCommand : AsyncCmdlet
{
    private readonly List<string> _allowFrom = [];

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    [AllowEmptyCollection]
    public string[] AllowFrom { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 11434;

    [Parameter]
    [ValidateSet("Auto", "Ufw", "Firewalld", "Nftables", "Iptables", "WindowsFirewall", "Pf")]
    public string Backend { get; set; } = "Auto";

    /// <summary>Allows 0.0.0.0/0 and ::/0 (everyone): refused without it.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Enables an installed but inactive firewall (ufw). Never done without it.</summary>
    [Parameter]
    public SwitchParameter EnableFirewall { get; set; }

    protected override void ProcessRecord()
    {
        // Every value is checked as it arrives; nothing runs until all of them are known (EndProcessing).
        try
        {
            foreach (var value in AllowFrom.Length == 0 ? [""] : AllowFrom)
            {
                Firewall.AllowFrom.ParseOne(value, Force.IsPresent);
                _allowFrom.Add(value);
            }
        }
        catch (FirewallInputException e)
        {
            ThrowTerminatingError(FirewallCmdletSupport.ToErrorRecord(e, AllowFrom));
        }
    }

    protected override void EndProcessing()
    {
        FirewallRequest request;
        try
        {
            request = new FirewallRequest(Port, Firewall.AllowFrom.Parse(_allowFrom, Force.IsPresent)) { EnableFirewall = EnableFirewall.IsPresent };
        }
        catch (FirewallInputException e)
        {
            ThrowTerminatingError(FirewallCmdletSupport.ToErrorRecord(e, _allowFrom.ToArray()));
            return;
        }

        try
        {
            var (manager, backend, plan) = RunAsync(async ct =>
            {
                var (m, b) = await FirewallCmdletSupport.ResolveAsync(this, Backend, ct).ConfigureAwait(false);
                return (m, b, await m.PlanSetAsync(b, request, ct).ConfigureAwait(false));
            });
            foreach (var warning in plan.Current.Warnings)
            {
                this.Warn(warning);
            }

            FirewallCmdletSupport.ConfirmAndApply(this, RunAsync, "Set-OllamaFirewallRule", "Set the Ollama firewall rule",
                $"{plan.Backend}: TCP port {Port} already allows exactly {string.Join(", ", plan.DesiredAllowFrom.Select(n => n.ToShort()))}; nothing to change.",
                manager, backend, plan);
        }
        catch (Exception e) when (e is FirewallInputException or FirewallBackendNotFoundException or FirewallCommandException)
        {
            ThrowTerminatingError(FirewallCmdletSupport.ToErrorRecord(e, _allowFrom.ToArray()));
        }
    }
}
