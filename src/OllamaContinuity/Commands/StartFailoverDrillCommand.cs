using System.Management.Automation;
using System.Net;
using System.Security;
using System.Text.RegularExpressions;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Runs the quarterly failover drill: blocks the cloud, proves every request is served by Ollama, checks the alert, verifies recovery and writes a report.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "FailoverDrill", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType("OllamaContinuity.Drill.DrillReport")]
public sealed class StartFailoverDrillCommand : BackendCmdlet, IBackendParameters
{
    [Parameter]
    [ValidateSet("Simulated", "Firewall", "Contingency")]
    public string BlockMethod { get; set; } = "Simulated";

    [Parameter]
    public TimeSpan Duration { get; set; } = TimeSpan.FromMinutes(15);

    [Parameter]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Prompts (strings) and/or script blocks that run the team's workflows and output Invoke-AiRequest's results.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public object[]? Probe { get; set; }

    /// <summary>A script block ($_ is the answer; truthy passes) or a regular expression the answer must match.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? QualityCheck { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ReportPath { get; set; }

    [Parameter]
    [ValidateSet("Markdown", "Json", "Html", "Csv")]
    public string? ReportFormat { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string Workflow { get; set; } = "FailoverDrill";

    [Parameter]
    public TimeSpan RecoveryTimeout { get; set; } = TimeSpan.FromMinutes(5);

    [Parameter]
    public SwitchParameter SkipAlertCheck { get; set; }

    /// <summary>Also send every prompt probe through the local failover gateway (the applications' path).</summary>
    [Parameter]
    public SwitchParameter Gateway { get; set; }

    /// <summary>The gateway's address; the default is the running gateway's (Get-AiGateway). Implies -Gateway.</summary>
    [Parameter]
    [ValidateNotNull]
    public Uri? GatewayUri { get; set; }

    /// <summary>A client token of the gateway; the default is the first token of the running gateway's tokens file. Implies -Gateway.</summary>
    [Parameter]
    [ValidateNotNull]
    public SecureString? GatewayToken { get; set; }

    // Start-FailoverDrill does not stream; the property completes IBackendParameters.
    double IBackendParameters.FirstTokenTimeoutSec => 0;

    protected override void EndProcessing() => new DrillRun(this).Run();

    /// <summary>The engine-facing part, kept out of the cmdlet class's signature.</summary>
    private sealed class DrillRun(StartFailoverDrillCommand c)
    {
        public void Run()
        {
            if (c.Duration <= TimeSpan.Zero || c.Interval <= TimeSpan.Zero || c.RecoveryTimeout <= TimeSpan.Zero)
            {
                c.ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Duration, -Interval and -RecoveryTimeout must be positive."), "InvalidDuration", ErrorCategory.InvalidArgument, null)
                {
                    ErrorDetails = new ErrorDetails("-Duration, -Interval and -RecoveryTimeout must be positive.") { RecommendedAction = "For example -Duration 00:15:00 -Interval 00:00:10." },
                });
            }

            BackendPlan plan;
            DrillOptions options;
            try
            {
                plan = InvokeAiRequestSettings.BuildPlan(c);
                options = new DrillOptions
                {
                    Plan = plan,
                    BlockMethod = Enum.Parse<DrillBlockMethod>(c.BlockMethod),
                    Duration = c.Duration,
                    Interval = c.Interval,
                    Probes = Probes(),
                    QualityCheck = Quality(c.QualityCheck),
                    Workflow = c.Workflow,
                    RecoveryTimeout = c.RecoveryTimeout,
                    CheckAlert = !c.SkipAlertCheck.IsPresent,
                    Log = line => c.Post(() => c.Narrate(line)),
                };
                if (c.Gateway.IsPresent || c.GatewayUri is not null || c.GatewayToken is not null)
                {
                    // The combination first (no I/O), then where the gateway is and which token to send.
                    FailoverDrill.Validate(options with { Gateway = new DrillGateway(c.GatewayUri ?? new Uri("http://127.0.0.1"), "-") });
                    options = options with { Gateway = FindGateway() };
                }
            }
            catch (ArgumentException e)
            {
                c.ThrowTerminatingError(new ErrorRecord(e, e.ParamName is { } id && !id.Contains(' ') ? id : "InvalidArgument", ErrorCategory.InvalidArgument, null)
                {
                    ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Correct the parameter or the environment variable named in the message." },
                });
                return;
            }
            catch (GatewayNotUsable e)
            {
                c.ThrowTerminatingError(GatewayError(e.Problem));
                return;
            }

            if (options.Gateway is { } gw)
            {
                // Before anything is blocked (and under -WhatIf too): the gateway answers and accepts the token.
                using var client = new DrillGatewayClient(gw);
                if (c.RunAsync(ct => client.CheckAsync(ct)) is { } problem)
                {
                    c.ThrowTerminatingError(GatewayError(problem));
                }
            }

            var engine = FailoverEngine.Shared;
            var drill = new FailoverDrill(engine, ContinuityRuntime.Alerts, AlertSettingsStore.Default.EffectiveOrThrow);
            DrillPlan what;
            try
            {
                what = c.RunAsync(ct => drill.PlanAsync(options, ct));
            }
            catch (System.Net.Sockets.SocketException e)
            {
                c.ThrowTerminatingError(new ErrorRecord(e, "CloudNameNotResolved", ErrorCategory.ResourceUnavailable, plan.Cloud?.Display)
                {
                    ErrorDetails = new ErrorDetails($"Cannot resolve the cloud endpoint {plan.Cloud?.Uri.Host}: {e.Message}") { RecommendedAction = "Check DNS on this host; the firewall block needs the endpoint's addresses." },
                });
                return;
            }
            catch (ArgumentException e)
            {
                c.ThrowTerminatingError(new ErrorRecord(e, e.ParamName is { } id && !id.Contains(' ') ? id : "InvalidArgument", ErrorCategory.InvalidArgument, plan.Cloud?.Display)
                {
                    ErrorDetails = new ErrorDetails(e.Message)
                    {
                        RecommendedAction = e.ParamName is "GatewayNeedsSharedBlock" or "GatewayNotLocal" or "InvalidGatewayUri"
                            ? "Use -BlockMethod Firewall or Contingency with a gateway on this host (a loopback -GatewayUri)."
                            : "Write the cloud endpoint's IPv4 address as four decimal numbers without leading zeros, or use its host name.",
                    },
                });
                return;
            }

            if (!c.ShouldProcess(what.CloudEndpoint, $"Run a {c.Duration} failover drill ({c.BlockMethod}): {what}"))
            {
                return;
            }

            var progress = new PipelineProgress(c);
            var report = c.RunAsync(ct => drill.RunAsync(options, progress, ct));
            c.WriteProgress(new ProgressRecord(1, "Failover drill", "Done") { RecordType = ProgressRecordType.Completed });
            if (c.ReportPath is { } path)
            {
                var full = c.GetUnresolvedProviderPathFromPSPath(path);
                DrillReportWriter.Write(report, full, c.ReportFormat is { } f ? Enum.Parse<DrillReportFormat>(f) : null);
                c.Narrate($"Drill report written to {full}.");
            }

            c.WriteObject(report);
            if (report.Outcome is "Failed" or "NotStarted")
            {
                var summary = string.Join(" ", report.Failures);
                c.WriteError(new ErrorRecord(new InvalidOperationException($"The failover drill {report.Outcome}: {summary}"), report.Outcome == "NotStarted" ? "DrillNotStarted" : "DrillFailed",
                    ErrorCategory.InvalidResult, report)
                {
                    ErrorDetails = new ErrorDetails($"The failover drill {(report.Outcome == "NotStarted" ? "could not start" : "failed")}: {summary}")
                    {
                        RecommendedAction = "Read the report's Steps and Probes, fix the cause, and run the drill again.",
                    },
                });
            }
        }

        /// <summary>The gateway to probe through: -GatewayUri or the running one; -GatewayToken or the first token of the running one's tokens file.</summary>
        private DrillGateway FindGateway()
        {
            var running = OllamaContinuity.Gateway.GatewayControl.Read() is { Running: true, Url: not null } s ? s : null;
            Uri uri;
            if (c.GatewayUri is { } given)
            {
                uri = given;
            }
            else if (running is not null)
            {
                uri = new Uri(running.Url!);
            }
            else
            {
                throw new GatewayNotUsable(new DrillGatewayProblem("GatewayNotRunning",
                    "No gateway is running for this user (Get-AiGateway finds none): start one with Start-AiGateway, or name one with -GatewayUri and -GatewayToken."));
            }

            string? token;
            if (c.GatewayToken is { Length: > 0 } secure)
            {
                token = new NetworkCredential("", secure).Password;
            }
            else
            {
                // The running gateway's own tokens file (owner-only), as Get-AiGateway reads it; only when it is that gateway.
                var same = running is not null && Uri.Compare(new Uri(running.Url!), uri, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
                token = same ? OllamaContinuity.Gateway.GatewayControl.FirstToken(running!.TokensFile) : null;
                if (token is null)
                {
                    throw new GatewayNotUsable(new DrillGatewayProblem("GatewayTokenRequired", same && running!.TokensFile is null
                        ? $"The gateway at {uri.GetLeftPart(UriPartial.Authority)} was started with client tokens from secrets only (Start-AiGateway -ClientTokenSecret), so there is no tokens file to take one from: pass one of its client tokens with -GatewayToken."
                        : same
                        ? $"The tokens file of the gateway at {uri.GetLeftPart(UriPartial.Authority)} ({running!.TokensFile}) holds no token this user can read: pass -GatewayToken."
                        : $"No client token for the gateway at {uri.GetLeftPart(UriPartial.Authority)}: it is not the gateway Start-AiGateway runs for this user, so pass -GatewayToken."));
                }
            }

            return new DrillGateway(uri, token);
        }

        private ErrorRecord GatewayError(DrillGatewayProblem p)
        {
            var category = p.ErrorId switch
            {
                "GatewayTokenRejected" => ErrorCategory.AuthenticationError,
                "GatewayTokenRequired" => ErrorCategory.InvalidArgument,
                _ => ErrorCategory.ResourceUnavailable,
            };
            return new ErrorRecord(new InvalidOperationException(p.Message), p.ErrorId, category, c.GatewayUri?.GetLeftPart(UriPartial.Authority))
            {
                ErrorDetails = new ErrorDetails(p.Message)
                {
                    RecommendedAction = p.ErrorId switch
                    {
                        "GatewayTokenRejected" or "GatewayTokenRequired" => "Pass a client token from the gateway's tokens file with -GatewayToken (Read-Host -AsSecureString), or leave it out to use the running gateway's own.",
                        "GatewayNotRunning" => "Start the gateway (Start-AiGateway) and check it with Get-AiGateway, then run the drill again.",
                        _ => "Check the gateway with Get-AiGateway (its console log names the cause), then run the drill again.",
                    },
                },
            };
        }

        private IReadOnlyList<DrillProbe> Probes()
        {
            if (c.Probe is null)
            {
                return [new DrillProbe("default") { Prompt = DrillOptions.DefaultPrompt }];
            }

            var list = new List<DrillProbe>();
            var i = 0;
            foreach (var raw in c.Probe)
            {
                i++;
                var item = raw is PSObject pso ? pso.BaseObject : raw;
                switch (item)
                {
                    case ScriptBlock sb:
                        list.Add(new DrillProbe($"scriptblock{i}") { Run = ct => RunScript(sb) });
                        break;
                    case string s when !string.IsNullOrWhiteSpace(s):
                        list.Add(new DrillProbe(s.Length > 40 ? s[..40] + "..." : s) { Prompt = s });
                        break;
                    default:
                        throw new ArgumentException($"-Probe item {i} is neither a prompt string nor a script block.", "InvalidProbe");
                }
            }

            return list;
        }

        private async Task<IReadOnlyList<AiResponse>> RunScript(ScriptBlock sb)
        {
            var output = await c.InvokeOnPipelineThreadAsync(() => sb.Invoke()).ConfigureAwait(false);
            return output.Select(o => o?.BaseObject).OfType<AiResponse>().ToArray();
        }

        private Func<string, bool>? Quality(object? check)
        {
            var item = check is PSObject pso ? pso.BaseObject : check;
            switch (item)
            {
                case null:
                    return null;
                case ScriptBlock sb:
                    return text => c.InvokeOnPipelineThreadAsync(() =>
                        LanguagePrimitives.IsTrue(sb.InvokeWithContext(null, [new PSVariable("_", text)], text).Select(o => o?.BaseObject).LastOrDefault())).GetAwaiter().GetResult();
                case string pattern:
                    try
                    {
                        var regex = new Regex(pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(2));
                        return regex.IsMatch;
                    }
                    catch (ArgumentException e)
                    {
                        throw new ArgumentException($"-QualityCheck is not a valid regular expression: {e.Message}", "InvalidQualityCheck");
                    }
                default:
                    throw new ArgumentException("-QualityCheck must be a script block or a regular expression string.", "InvalidQualityCheck");
            }
        }
    }

    private sealed class GatewayNotUsable(DrillGatewayProblem problem) : Exception(problem.Message)
    {
        public DrillGatewayProblem Problem { get; } = problem;
    }

    private sealed class PipelineProgress(StartFailoverDrillCommand c) : IProgress<DrillProgress>
    {
        public void Report(DrillProgress p) => c.Post(() => c.WriteProgress(new ProgressRecord(1, "Failover drill", p.Status)
        {
            CurrentOperation = "Phase: " + p.Phase,
            PercentComplete = p.PercentComplete,
            SecondsRemaining = p.SecondsRemaining,
        }));
    }
}
