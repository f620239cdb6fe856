using System.Globalization;
using System.Management.Automation;
using System.Net;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Makes the local failover gateway a service: a sandboxed systemd unit (Linux), a Windows service or a launchd daemon (macOS).</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "AiGateway", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Gateway.GatewayServiceResult")]
public sealed class InstallAiGatewayCommand : BackendCmdlet
{
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 11435;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Bind")]
    [ValidateNotNullOrEmpty]
    public string BindAddress { get; set; } = "127.0.0.1";

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? TokensFile { get; set; }

    [Parameter]
    [ValidateRange(1, 100_000)]
    public int MaxConcurrentRequests { get; set; }

    [Parameter]
    [ValidateRange(1, 10_000_000)]
    public int RatePerMinute { get; set; }

    [Parameter]
    [ValidateRange(1024, int.MaxValue)]
    public long MaxRequestBodyBytes { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Model { get; set; }

    [Parameter]
    [ValidateSet("Linux", "Windows", "MacOS")]
    public string? Platform { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Root { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? GatewayDirectory { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? DotnetPath { get; set; }

    protected override void ProcessRecord() => Bridge.Install(this, RunAsync);

    /// <summary>Keeps engine types out of the cmdlet's signature (the module's load context resolves them at run time).</summary>
    private static class Bridge
    {
        public static void Install(InstallAiGatewayCommand c, Func<Func<CancellationToken, Task<object>>, object> run)
        {
            var platform = GatewayServiceSupport.Platform(c.Platform);
            var local = platform == OllamaContinuity.Hardening.HardeningRequest.CurrentPlatform;
            var root = c.Root is null ? null : c.GetUnresolvedProviderPathFromPSPath(c.Root);
            // Paths on this machine are resolved like any PowerShell path; paths of an image or another system are the target's own.
            string? Target(string? path) => path is null ? null : local && root is null ? c.GetUnresolvedProviderPathFromPSPath(path) : path;
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            void Set(string name, string? value)
            {
                // A parameter wins over the session's environment (the variables Invoke-AiRequest reads).
                if ((value ?? Environment.GetEnvironmentVariable(name)) is { Length: > 0 } v)
                {
                    env[name] = v;
                }
            }

            string? Sec(string name, double s) => c.MyInvocation.BoundParameters.ContainsKey(name) ? s.ToString(CultureInfo.InvariantCulture) : null;
            Set("CLOUD_PROVIDER", c.CloudProvider);
            Set("CLOUD_API_URL", c.CloudUri);
            Set("CLOUD_MODEL", c.CloudModel);
            Set("CLOUD_API_KEY", c.CloudApiKey is { } key ? new NetworkCredential("", key).Password : null);
            Set("CLOUD_TIMEOUT", Sec(nameof(CloudTimeoutSec), c.CloudTimeoutSec));
            Set("OLLAMA_URL", c.OllamaUri is { } u ? string.Join(",", u) : null);
            Set("OLLAMA_MODEL", c.OllamaModel);
            Set("OLLAMA_TIMEOUT", Sec(nameof(OllamaTimeoutSec), c.OllamaTimeoutSec));
            Set("CONNECT_TIMEOUT", Sec(nameof(ConnectTimeoutSec), c.ConnectTimeoutSec));
            Set("FIRST_TOKEN_TIMEOUT", null);
            var request = new OllamaContinuity.Gateway.GatewayServiceRequest
            {
                Platform = platform,
                GatewayDirectory = Target(c.GatewayDirectory) ?? (local ? Path.Combine(Path.GetDirectoryName(typeof(InstallAiGatewayCommand).Assembly.Location)!, "Gateway")
                    : OllamaContinuity.Gateway.GatewayServicePlanner.DefaultGatewayDirectory(platform)),
                DotnetPath = c.DotnetPath ?? (local ? OllamaContinuity.Gateway.GatewayControl.DotnetHost() : OllamaContinuity.Gateway.GatewayServicePlanner.DefaultDotnetPath(platform)),
                Bind = c.BindAddress,
                Port = c.Port,
                Force = c.Force.IsPresent,
                TokensFile = Target(c.TokensFile),
                MaxConcurrentRequests = c.MaxConcurrentRequests > 0 ? c.MaxConcurrentRequests : null,
                RatePerMinute = c.RatePerMinute > 0 ? c.RatePerMinute : null,
                MaxBodyBytes = c.MaxRequestBodyBytes > 0 ? c.MaxRequestBodyBytes : null,
                Models = c.Model ?? [],
                LogPath = Target(c.LogPath),
                Environment = env,
                Root = root,
            };
            GatewayServiceSupport.Apply(c, run,
                (runner, ct) => OllamaContinuity.Gateway.GatewayServicePlanner.PlanInstallAsync(request, runner,
                    platform == OllamaContinuity.Hardening.HardeningPlatform.Windows && OperatingSystem.IsWindows() ? OllamaContinuity.Gateway.WindowsServiceEnvironment.Instance : new OllamaContinuity.Gateway.InMemoryServiceEnvironment(), ct),
                platform, root);
        }
    }
}
