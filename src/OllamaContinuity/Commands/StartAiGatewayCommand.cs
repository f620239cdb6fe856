using System.Globalization;
using System.Management.Automation;
using System.Net;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Starts the local failover gateway: OpenAI, Anthropic and Ollama APIs for applications, served cloud first and Ollama on failure.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "AiGateway", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Gateway.GatewayStatus")]
public sealed class StartAiGatewayCommand : BackendCmdlet
{
    [Parameter]
    [ValidateRange(0, 65535)]
    public int Port { get; set; } = 11435;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string BindAddress { get; set; } = "127.0.0.1";

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TokensFile { get; set; }

    /// <summary>
    /// Names of SecretManagement secrets, each holding one client token (or a hashtable / JSON object with token,
    /// name, workflow, ratePerMinute). Read with Get-Secret in this session and handed to the gateway over its
    /// standard input, never written to disk.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? ClientTokenSecret { get; set; }

    /// <summary>The SecretManagement vault to read -ClientTokenSecret from (the default value is the default vault).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Vault { get; set; }

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

    protected override void EndProcessing()
    {
        if (!IPAddress.TryParse(BindAddress == "localhost" ? "127.0.0.1" : BindAddress, out var address))
        {
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"'{BindAddress}' is not an IP address."), "InvalidBindAddress", ErrorCategory.InvalidArgument, BindAddress));
            return;
        }

        if (!IPAddress.IsLoopback(address) && !Force.IsPresent)
        {
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException($"Binding {BindAddress} exposes the gateway beyond this machine."), "NonLoopbackBindNeedsForce", ErrorCategory.SecurityError, BindAddress)
            {
                ErrorDetails = new ErrorDetails($"Binding {BindAddress} exposes the gateway beyond this machine; the gateway binds 127.0.0.1 unless -Force is given.")
                {
                    RecommendedAction = "Keep the default (127.0.0.1), or pass -Force on purpose: client tokens are then the only thing between the network and the AI backends.",
                },
            });
            return;
        }

        if (Vault is not null && ClientTokenSecret is null)
        {
            ThrowTerminatingError(new ErrorRecord(
                new ArgumentException("-Vault names where to read -ClientTokenSecret from; give -ClientTokenSecret too."), "VaultWithoutClientTokenSecret", ErrorCategory.InvalidArgument, Vault));
            return;
        }

        // Secrets are read before anything starts (and under -WhatIf too), so a missing or unusable secret stops here.
        object? secretTokens = ClientTokenSecret is null ? null : ClientTokenSecrets.Read(this, ClientTokenSecret, Vault);
        Start(address, secretTokens);
    }

    private void Start(IPAddress address, object? secretTokens)
    {
        var gatewayDir = Path.Combine(Path.GetDirectoryName(typeof(StartAiGatewayCommand).Assembly.Location)!, "Gateway");
        // The tokens file: the one given; else the default one unless the tokens come from secrets only.
        var tokens = TokensFile is not null ? GetUnresolvedProviderPathFromPSPath(TokensFile) : secretTokens is null ? Bridge.DefaultTokensFile : null;
        var sources = new List<string>();
        if (tokens is not null)
        {
            sources.Add($"client tokens {tokens}");
        }

        if (ClientTokenSecret is not null)
        {
            sources.Add($"client tokens from the secret(s) {string.Join(", ", ClientTokenSecret)}" + (Vault is null ? "" : $" in the vault {Vault}"));
        }

        if (!ShouldProcess($"{address}:{Port.ToString(CultureInfo.InvariantCulture)} ({string.Join("; ", sources)})", "Start the AI failover gateway"))
        {
            return;
        }

        try
        {
            if (tokens is not null && Bridge.EnsureTokens(tokens))
            {
                this.Narrate($"Created the client tokens file {tokens} with one random token (owner-only). Give applications a token from it; add one entry per application to tell them apart.");
            }

            var status = RunAsync(ct => Bridge.StartAsync(this, gatewayDir, address.ToString(), tokens, secretTokens, ct));
            this.Narrate($"The gateway listens on {status.Url} (PID {status.ProcessId}).");
            WriteObject(status);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or FileNotFoundException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            var (id, category) = e switch
            {
                FileNotFoundException => ("GatewayNotInstalled", ErrorCategory.ObjectNotFound),
                TimeoutException => ("GatewayStartTimeout", ErrorCategory.OperationTimeout),
                InvalidOperationException when e.Message.Contains("already running", StringComparison.Ordinal) => ("GatewayAlreadyRunning", ErrorCategory.ResourceExists),
                _ => ("GatewayStartFailed", ErrorCategory.OpenError),
            };
            ThrowTerminatingError(new ErrorRecord(e, id, category, gatewayDir));
        }
    }

    /// <summary>Keeps engine types out of the cmdlet's signature (the module's load context resolves them at run time).</summary>
    private static class Bridge
    {
        public static string DefaultTokensFile => OllamaContinuity.Gateway.GatewayControl.DefaultTokensFile;

        public static bool EnsureTokens(string path) => OllamaContinuity.Gateway.GatewayControl.EnsureTokensFile(path) is not null;

        public static async Task<OllamaContinuity.Gateway.GatewayStatus> StartAsync(StartAiGatewayCommand c, string dir, string bind, string? tokens, object? secretTokens, CancellationToken ct)
        {
            var fromSecrets = (OllamaContinuity.Gateway.GatewayClientToken[]?)secretTokens ?? [];
            var env = new Dictionary<string, string?>();
            void Set(string name, string? value)
            {
                if (value is not null)
                {
                    env[name] = value;
                }
            }

            string Sec(double s) => s.ToString(CultureInfo.InvariantCulture);
            var bound = c.MyInvocation.BoundParameters;
            Set("CLOUD_PROVIDER", c.CloudProvider);
            Set("CLOUD_API_URL", c.CloudUri);
            Set("CLOUD_MODEL", c.CloudModel);
            Set("CLOUD_API_KEY", c.CloudApiKey is { } key ? new NetworkCredential("", key).Password : null);
            Set("CLOUD_TIMEOUT", bound.ContainsKey(nameof(CloudTimeoutSec)) ? Sec(c.CloudTimeoutSec) : null);
            Set("OLLAMA_URL", c.OllamaUri is { } u ? string.Join(",", u) : null);
            Set("OLLAMA_MODEL", c.OllamaModel);
            Set("OLLAMA_TIMEOUT", bound.ContainsKey(nameof(OllamaTimeoutSec)) ? Sec(c.OllamaTimeoutSec) : null);
            Set("CONNECT_TIMEOUT", bound.ContainsKey(nameof(ConnectTimeoutSec)) ? Sec(c.ConnectTimeoutSec) : null);
            var settings = new OllamaContinuity.Gateway.GatewayStartSettings
            {
                GatewayDirectory = dir,
                Bind = bind,
                Port = c.Port,
                Force = c.Force.IsPresent,
                TokensFile = tokens,
                ClientTokens = fromSecrets,
                MaxConcurrentRequests = c.MaxConcurrentRequests > 0 ? c.MaxConcurrentRequests : null,
                RatePerMinute = c.RatePerMinute > 0 ? c.RatePerMinute : null,
                MaxBodyBytes = c.MaxRequestBodyBytes > 0 ? c.MaxRequestBodyBytes : null,
                Models = c.Model ?? [],
                LogPath = c.LogPath is null ? null : c.GetUnresolvedProviderPathFromPSPath(c.LogPath),
                Environment = env,
            };
            var status = await OllamaContinuity.Gateway.GatewayControl.StartAsync(settings, ct).ConfigureAwait(false);
            return await OllamaContinuity.Gateway.GatewayControl.QueryAsync(status,
                fromSecrets.Length > 0 ? fromSecrets[0].Token : OllamaContinuity.Gateway.GatewayControl.FirstToken(tokens), ct).ConfigureAwait(false);
        }
    }
}
