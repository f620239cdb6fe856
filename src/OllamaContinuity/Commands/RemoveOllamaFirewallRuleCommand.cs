using System.Management.Automation;
using OllamaContinuity.Firewall;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Removes the firewall rules this module added for the Ollama port, and nothing else.</para>
/// </summary>
[Cmdlet(VerbsCommon.Remove, "OllamaFirewallRule", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType("OllamaContinuity.Firewall.FirewallRuleInfo")]
public sealed class RemoveOllamaFirewallRuleCommand : FirewallRuleCmdletBase
{
    protected override void ProcessRecord()
    {
        try
        {
            var (manager, backend, plan) = RunAsync(async ct =>
            {
                var (m, b) = await FirewallCmdletSupport.ResolveAsync(this, Backend, ct).ConfigureAwait(false);
                return (m, b, await m.PlanRemoveAsync(b, Port, ct).ConfigureAwait(false));
            });
            FirewallCmdletSupport.ConfirmAndApply(this, RunAsync, "Remove-OllamaFirewallRule", "Remove the Ollama firewall rule",
                $"{plan.Backend}: the module has no rule for TCP port {Port}; nothing to remove.", manager, backend, plan);
        }
        catch (Exception e) when (e is FirewallInputException or FirewallBackendNotFoundException or FirewallCommandException)
        {
            ThrowTerminatingError(FirewallCmdletSupport.ToErrorRecord(e, Port));
        }
    }
}
