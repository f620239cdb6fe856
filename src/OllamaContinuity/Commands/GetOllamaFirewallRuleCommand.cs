using System.Management.Automation;
using OllamaContinuity.Firewall;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Shows the module's firewall rule for the Ollama port as it is in force now, read from the firewall itself.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "OllamaFirewallRule")]
[OutputType("OllamaContinuity.Firewall.FirewallRuleInfo")]
public sealed class GetOllamaFirewallRuleCommand : FirewallRuleCmdletBase
{
    protected override void ProcessRecord()
    {
        try
        {
            var info = RunAsync(async ct =>
            {
                var (m, b) = await FirewallCmdletSupport.ResolveAsync(this, Backend, ct).ConfigureAwait(false);
                return await m.GetAsync(b, Port, ct).ConfigureAwait(false);
            });
            foreach (var warning in info.Warnings)
            {
                this.Warn(warning);
            }

            WriteObject(info);
        }
        catch (Exception e) when (e is FirewallInputException or FirewallBackendNotFoundException)
        {
            WriteError(FirewallCmdletSupport.ToErrorRecord(e, Port));
        }
    }
}
