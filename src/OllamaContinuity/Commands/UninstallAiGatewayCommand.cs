using System.Management.Automation;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Removes the gateway service Install-AiGateway made: stops and disables it, removes its unit, settings file or daemon, and reloads the service manager.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Uninstall, "AiGateway", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType("OllamaContinuity.Gateway.GatewayServiceResult")]
public sealed class UninstallAiGatewayCommand : AsyncCmdlet
{
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet("Linux", "Windows", "MacOS")]
    public string? Platform { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? Root { get; set; }

    protected override void ProcessRecord() => Bridge.Uninstall(this, RunAsync);

    /// <summary>Keeps engine types out of the cmdlet's signature (the module's load context resolves them at run time).</summary>
    private static class Bridge
    {
        public static void Uninstall(UninstallAiGatewayCommand c, Func<Func<CancellationToken, Task<object>>, object> run)
        {
            var platform = GatewayServiceSupport.Platform(c.Platform);
            var root = c.Root is null ? null : c.GetUnresolvedProviderPathFromPSPath(c.Root);
            GatewayServiceSupport.Apply(c, run, (runner, ct) => OllamaContinuity.Gateway.GatewayServicePlanner.PlanUninstallAsync(platform, root, runner, ct,
                platform == OllamaContinuity.Hardening.HardeningPlatform.Windows && OperatingSystem.IsWindows() ? OllamaContinuity.Gateway.WindowsServiceEnvironment.Instance : new OllamaContinuity.Gateway.InMemoryServiceEnvironment()), platform, root);
        }
    }
}
