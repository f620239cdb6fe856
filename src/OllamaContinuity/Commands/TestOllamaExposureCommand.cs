using System.Management.Automation;
using OllamaContinuity.Exposure;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Audits this Ollama host against the hardening checklist, or probes hosts and subnets for Ollama APIs that answer without authentication.</para>
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "OllamaExposure", DefaultParameterSetName = LocalSet)]
[OutputType("OllamaContinuity.Exposure.ExposureFinding")]
[OutputType(typeof(bool))]
public sealed class TestOllamaExposureCommand : AsyncCmdlet
{
    private const string LocalSet = "Local";
    private const string NetworkSet = "Network";
    private readonly List<string> _targets = [];

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = NetworkSet)]
    [ValidateNotNullOrEmpty]
    public string[] Target { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 11434;

    [Parameter(ParameterSetName = NetworkSet)]
    [ValidateRange(50, 60000)]
    public int TimeoutMs { get; set; } = 2000;

    [Parameter(ParameterSetName = NetworkSet)]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = 256;

    [Parameter(ParameterSetName = NetworkSet)]
    public SwitchParameter IncludeClosed { get; set; }

    [Parameter(ParameterSetName = NetworkSet)]
    public SwitchParameter Force { get; set; }

    [Parameter(ParameterSetName = LocalSet)]
    [ValidateNotNullOrEmpty]
    public string? Root { get; set; }

    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>The firewall the local audit's Firewall check reads; Auto (the default) detects the one in force.</summary>
    [Parameter(ParameterSetName = LocalSet)]
    [ValidateSet("Auto", "Ufw", "Firewalld", "Nftables", "Iptables", "WindowsFirewall", "Pf", IgnoreCase = true)]
    public string FirewallBackend { get; set; } = "Auto";

    protected override void ProcessRecord()
    {
        if (ParameterSetName == NetworkSet)
        {
            _targets.AddRange(Target);
        }
    }

    protected override void EndProcessing()
    {
        var findings = ParameterSetName == NetworkSet ? ScanNetwork() : AuditLocal();
        if (findings is null)
        {
            return;
        }

        if (Quiet.IsPresent)
        {
            WriteObject(!findings.Any(f => f.Status == ExposureStatus.Fail));
        }
    }

    private List<ExposureFinding>? AuditLocal()
    {
        string root = "/";
        if (Root is not null)
        {
            root = GetUnresolvedProviderPathFromPSPath(Root);
            if (!Directory.Exists(root))
            {
                ThrowTerminatingError(new ErrorRecord(new DirectoryNotFoundException($"The root directory '{root}' does not exist."), "RootNotFound", ErrorCategory.ObjectNotFound, Root)
                {
                    ErrorDetails = new ErrorDetails($"The root directory '{root}' does not exist.") { RecommendedAction = "Give the path of a mounted image or a copied /etc, /proc and /sys tree." },
                });
            }
        }

        var options = new LocalAuditOptions
        {
            Root = root,
            Port = MyInvocation.BoundParameters.ContainsKey(nameof(Port)) ? Port : null,
            Firewall = LiveOrOffline(Root is null, FirewallBackend),
            Runner = new CmdletOrProcessCommandRunner(this), // Get-NetTCPConnection in this session; native tools as processes
        };
        const int activity = 1;
        var step = 0;
        var findings = RunAsync(ct => new LocalAudit(options).RunAsync(check => Post(() =>
            WriteProgress(new ProgressRecord(activity, "Auditing Ollama exposure", $"Checking {check}") { PercentComplete = Math.Min(100, step++ * 100 / 8) })), ct));
        WriteProgress(new ProgressRecord(activity, "Auditing Ollama exposure", "Done") { RecordType = ProgressRecordType.Completed });
        Emit(findings);
        return findings.ToList();
    }

    /// <summary>
    /// The firewall check asks the firewall engine (what Get-OllamaFirewallRule reads) on a live host; an offline
    /// audit of an image (-Root) cannot read its firewall, so there it stays "could not be determined".
    /// </summary>
    private static IFirewallStatusProvider LiveOrOffline(bool live, string backend) =>
        ExposureAuditDefaults.FirewallStatusProvider is UndeterminedFirewallStatusProvider && live
            ? new OllamaContinuity.Firewall.FirewallStatusReader(null, Enum.Parse<OllamaContinuity.Firewall.FirewallBackendKind>(backend, ignoreCase: true))
            : ExposureAuditDefaults.FirewallStatusProvider;

    private List<ExposureFinding>? ScanNetwork()
    {
        var timeout = TimeSpan.FromMilliseconds(TimeoutMs);
        try
        {
            ScanTargets.Validate(_targets, Force.IsPresent);
        }
        catch (ScanTargetException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, ErrorCategory.InvalidArgument, _targets.ToArray())
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction },
            });
        }

        var list = RunAsync(ct => ScanTargets.ExpandAsync(_targets, Force.IsPresent, timeout, null, ct));
        var all = new List<ExposureFinding>();
        foreach (var (given, problem) in list.Unresolved)
        {
            var f = new ExposureFinding
            {
                Check = ExposureChecks.NetworkExposure,
                Status = ExposureStatus.Error,
                Target = given,
                HostName = given,
                Port = Port,
                Detail = $"Could not resolve '{given}': {problem}.",
                Remediation = "",
                Timestamp = DateTimeOffset.UtcNow,
            };
            all.Add(f);
            WriteError(new ErrorRecord(new ItemNotFoundException(f.Detail), "UnresolvedTarget", ErrorCategory.ObjectNotFound, given)
            {
                ErrorDetails = new ErrorDetails(f.Detail) { RecommendedAction = "Check the host name, or give its IP address." },
            });
        }

        var verbose = MyInvocation.BoundParameters.ContainsKey("Verbose") || MyInvocation.BoundParameters.ContainsKey("Debug")
            || (SessionState.PSVariable.GetValue("VerbosePreference") is ActionPreference vp && vp != ActionPreference.SilentlyContinue);
        var options = new ExposureScanOptions
        {
            Port = Port, Timeout = timeout, ThrottleLimit = ThrottleLimit, IncludeClosed = IncludeClosed.IsPresent,
            Log = verbose ? line => Post(() => this.Narrate(line)) : null,
        };
        this.Narrate($"Probing {list.Targets.Count} address(es) from {string.Join(", ", _targets)} on TCP port {Port}: at most {ThrottleLimit} at a time, {TimeoutMs} ms per step (connect, then GET /, /api/version and /api/tags).");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        const int activity = 2;
        var total = list.Targets.Count;
        var lastPercent = -1;
        var findings = RunAsync(ct => ExposureScanner.ScanAsync(list.Targets, options, (done, n) =>
        {
            var percent = n == 0 ? 100 : done * 100 / n;
            if (Interlocked.Exchange(ref lastPercent, percent) != percent)
            {
                Post(() => WriteProgress(new ProgressRecord(activity, $"Probing {n} address(es) on port {Port} for Ollama", $"{done} of {n} probed") { PercentComplete = percent }));
            }
        }, null, ct));
        WriteProgress(new ProgressRecord(activity, $"Probing {total} address(es) on port {Port} for Ollama", "Done") { RecordType = ProgressRecordType.Completed });
        var seconds = clock.Elapsed.TotalSeconds;
        this.Narrate($"Probed {total} address(es) in {seconds:0.###} s ({(seconds > 0 ? total / seconds : total):0} addresses/s): {findings.Count(f => f.Status == ExposureStatus.Fail)} unauthenticated Ollama API(s) found.");
        all.AddRange(findings);
        Emit(all);
        return all;
    }

    private void Emit(IEnumerable<ExposureFinding> findings)
    {
        if (Quiet.IsPresent)
        {
            return;
        }

        foreach (var f in findings)
        {
            WriteObject(f);
        }
    }
}
