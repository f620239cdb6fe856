using System.Management.Automation;
using OllamaContinuity.Firewall;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Removes the firewall rules this module added for the Ollama port, and nothing else.</para>
/// </summary>
[Cmdlet(VerbsCommon.Remove, "OllamaFirewallRule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType("OllamaContinuity.Firewall.FirewallRuleInfo")]
public sealed class RemoveOllamaFirewallRuleCommand : AsyncCmdlet
{
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 11434;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet("Auto", "Ufw", "Firewalld", "Nftables", "Iptables", "WindowsFirewall", "Pf")]
    public string Backend { get; set; } = "Auto";

    protected override void ProcessRecord()
    {
        try
        {
            var (manager, backend, plan) = RunAsync(async ct =>
            {
                var (m, b) = await FirewallCmdletSupport.ResolveAsync(this, Backend, ct).ConfigureAwait(false);
                return (m, b, await m.PlanRemoveAsync(b, Port, ct).ConfigureAwait(false));
            });
            if (plan.IsEmpty)
            {
                WriteVerbose($"{plan.Backend}: the module has no rule for TCP port {Port}; nothing to remove.");
                WriteObject(FirewallManager.ToInfo(backend, Port, plan.Current, false, []));
                return;
            }

            var description = FirewallCmdletSupport.Describe("Remove the Ollama firewall rule", plan);
            if (!ShouldProcess(description, description + "\nRemove these rules?", "Remove-OllamaFirewallRule"))
            {
                return;
            }

            var progress = FirewallCmdletSupport.Progress(this, $"Remove-OllamaFirewallRule ({plan.Backend}, port {Port})");
            var info = RunAsync(ct => manager.ApplyAsync(backend, plan, progress, ct));
            WriteProgress(new ProgressRecord(1, "Remove-OllamaFirewallRule", "Done") { RecordType = ProgressRecordType.Completed });
            WriteObject(info);
        }
        catch (Exception e) when (e is FirewallInputException or FirewallBackendNotFoundException or FirewallCommandException)
        {
            ThrowTerminatingError(FirewallCmdletSupport.ToErrorRecord(e, Port));
        }
    }
}
