using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Net;
using System.Security;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Sends a chat request to the cloud AI provider and fails over to local Ollama when the cloud fails.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "AiRequest", DefaultParameterSetName = PromptSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
// Engine types stay out of the cmdlet's signature (base types, interfaces, attributes): PowerShell reflects over
// it before the module initializer can load the engine into its own load context.
[OutputType("OllamaContinuity.Failover.AiResponse")]
public sealed class InvokeAiRequestCommand : BackendCmdlet, IBackendParameters
{
    private const string PromptSet = "Prompt";
    private const string MessagesSet = "Messages";

    private BackendPlan? _plan;
    private string? _route;
    private string? _approvalProblem;

    // By value (a string per request) or by property name (Import-Csv prompts.csv: the Prompt column, with the
    // Workflow and SystemPrompt columns of the same row).
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = PromptSet)]
    [ValidateNotNullOrEmpty]
    public string Prompt { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = MessagesSet)]
    [ValidateNotNullOrEmpty]
    public object[] Messages { get; set; } = [];

    /// <summary>An empty value (an empty CSV cell) means none.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string? SystemPrompt { get; set; }

    [Parameter]
    [ValidateRange(0.1, 3600)]
    public double FirstTokenTimeoutSec { get; set; }

    /// <summary>An empty value (an empty CSV cell) means none.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string? Workflow { get; set; }

    [Parameter]
    public SwitchParameter Stream { get; set; }

    [Parameter]
    public SwitchParameter ConfirmFailover { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int MaxTokens { get; set; }

    [Parameter]
    [ValidateRange(0.0, 2.0)]
    public double Temperature { get; set; } = double.NaN;

    [Parameter]
    public SwitchParameter LogContent { get; set; }

    /// <summary>Restart (default), Continue or None: what happens when a stream breaks after text was shown.</summary>
    [Parameter]
    [ValidateSet("Restart", "Continue", "None")]
    public string StreamRescue { get; set; } = "Restart";

    /// <summary>Keep the model's reasoning/thinking in the output's Thinking property.</summary>
    [Parameter]
    public SwitchParameter IncludeThinking { get; set; }

    /// <summary>The largest answer read from one backend (after decompression). The default is 16 MiB.</summary>
    [Parameter]
    [ValidateRange(1024, int.MaxValue)]
    public int MaxResponseBytes { get; set; }

    /// <summary>The longest Retry-After (429/503) waited for before retrying the cloud once; longer ones fail over at once.</summary>
    [Parameter]
    [ValidateRange(0.0, 60.0)]
    public double MaxRetryAfterSec { get; set; } = 3;

    /// <summary>How often the cloud is probed while its circuit is open.</summary>
    [Parameter]
    [ValidateRange(0.1, 3600)]
    public double ProbeIntervalSec { get; set; } = 2;

    protected override void BeginProcessing()
    {
        try
        {
            _plan = InvokeAiRequestSettings.BuildPlan(this) with
            {
                Retry = CloudRetryOptions.Default with { MaxRetryAfter = TimeSpan.FromSeconds(MaxRetryAfterSec) },
                ProbeInterval = MyInvocation.BoundParameters.ContainsKey(nameof(ProbeIntervalSec)) ? TimeSpan.FromSeconds(ProbeIntervalSec) : null,
            };
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, e.ParamName ?? "InvalidArgument", ErrorCategory.InvalidArgument, null)
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Correct the parameter or the environment variable named in the message." },
            });
        }
    }

    protected override void ProcessRecord()
    {
        IReadOnlyList<ChatMessage> messages;
        try
        {
            messages = ParameterSetName == MessagesSet ? InvokeAiRequestSettings.ToMessages(Messages) : [new ChatMessage("user", Prompt)];
            if (messages.All(m => string.IsNullOrWhiteSpace(m.Content)))
            {
                throw new ArgumentException("The prompt is empty or white space.") { Data = { ["id"] = "EmptyPrompt" } };
            }
        }
        catch (ArgumentException e)
        {
            WriteError(new ErrorRecord(e, e.Data["id"] as string ?? "InvalidMessages", ErrorCategory.InvalidArgument, ParameterSetName == MessagesSet ? Messages : Prompt));
            return;
        }

        var workflow = string.IsNullOrWhiteSpace(Workflow) ? null : Workflow.Trim();
        var systemPrompt = string.IsNullOrWhiteSpace(SystemPrompt) ? null : SystemPrompt;
        var plan = _plan!;
        // The route is the plan's, built once per pipeline (BeginProcessing), not once per prompt.
        var route = _route ??= string.Join(", then ", new[] { plan.Cloud?.ToString() }.Concat(plan.Ollama.Select(o => o.ToString())).Where(s => s is not null));
        if (!ShouldProcess(route, "Send AI request" + (workflow is null ? "" : $" for workflow '{workflow}'")))
        {
            return;
        }

        var request = new AiRequest
        {
            Messages = messages,
            SystemPrompt = systemPrompt,
            Workflow = workflow,
            Stream = Stream.IsPresent,
            RequireFailoverApproval = ConfirmFailover.IsPresent,
            MaxTokens = MaxTokens > 0 ? MaxTokens : null,
            Temperature = double.IsNaN(Temperature) ? null : Temperature,
            LogContent = LogContent.IsPresent,
            StreamRescue = Enum.Parse<StreamRescueMode>(StreamRescue, ignoreCase: true),
            IncludeThinking = IncludeThinking.IsPresent,
            MaxResponseBytes = MaxResponseBytes > 0 ? MaxResponseBytes : null,
        };

        _requestStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            // Started on this thread: the request leaves without a thread-pool hop first (the observer's callbacks
            // only post to this thread or await it, so nothing blocks waiting for it).
            var response = RunAsync(ct => FailoverEngine.Shared.SendAsync(request, plan, new Observer(this), ct), startOnPipelineThread: true);
            CompleteProgress();
            if (Stream.IsPresent && Host?.UI is { } ui)
            {
                ui.WriteLine();
            }

            WriteObject(response);
        }
        catch (AiRequestException e)
        {
            CompleteProgress();
            WriteError(ToErrorRecord(e, ParameterSetName == MessagesSet ? Messages : Prompt));
        }
    }

    private const int ProgressId = 0x0A1;

    /// <summary>
    /// A request shows a progress bar only once it has taken this long: a sub-second request (most of them, and every
    /// one on loopback) never pays for progress records the host would render and erase at once.
    /// </summary>
    internal static readonly TimeSpan ProgressDelay = TimeSpan.FromMilliseconds(500);

    private bool _progressShown;
    private long _requestStarted;
    private Timer? _progressTimer;
    private volatile AttemptInfo? _latestAttempt;

    private sealed record AttemptInfo(string Backend, string Endpoint, int Index, int Count);

    private void ShowProgress(string backend, string endpoint, int index, int count)
    {
        _progressShown = true;
        WriteProgress(new ProgressRecord(ProgressId, "Invoke-AiRequest" + (Workflow is null ? "" : $" ({Workflow})"),
            index == 1 ? $"Asking {backend} at {endpoint}" : $"Falling back to {backend} at {endpoint}")
        {
            PercentComplete = Math.Min(99, (index - 1) * 100 / Math.Max(1, count)),
            CurrentOperation = $"backend {index} of {count}",
        });
    }

    /// <summary>Worker side: remembers the attempt, and shows it once the request has run for <see cref="ProgressDelay"/>.</summary>
    private void AttemptStarted(string backend, string endpoint, int index, int count)
    {
        _latestAttempt = new AttemptInfo(backend, endpoint, index, count);
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(_requestStarted);
        if (elapsed >= ProgressDelay)
        {
            Post(ShowLatestProgress);
        }
        else
        {
            _progressTimer ??= new Timer(static state => ((InvokeAiRequestCommand)state!).Post(((InvokeAiRequestCommand)state!).ShowLatestProgress), this, ProgressDelay - elapsed, Timeout.InfiniteTimeSpan);
        }
    }

    private void ShowLatestProgress()
    {
        if (_latestAttempt is { } a)
        {
            ShowProgress(a.Backend, a.Endpoint, a.Index, a.Count);
        }
    }

    private void CompleteProgress()
    {
        _progressTimer?.Dispose();
        _progressTimer = null;
        _latestAttempt = null;
        if (_progressShown)
        {
            WriteProgress(new ProgressRecord(ProgressId, "Invoke-AiRequest", "Done") { RecordType = ProgressRecordType.Completed });
            _progressShown = false;
        }
    }

    private ErrorRecord ToErrorRecord(AiRequestException e, object target)
    {
        var (id, category, action) = e.Failure switch
        {
            AiRequestFailure.AllBackendsFailed => ("AllBackendsFailed", ErrorCategory.ConnectionError, "Check that the cloud endpoint and at least one Ollama server are reachable (" + Advice.CheckReachable + ")."),
            AiRequestFailure.RequestRejected => ("RequestRejected", ErrorCategory.InvalidArgument, "Fix the request (model name, size, parameters); it was not sent to Ollama because it would fail the same way."),
            AiRequestFailure.ContentPolicyRefusal => ("ContentPolicyRefusal", ErrorCategory.PermissionDenied, "The provider refused on content policy. Review the prompt; the module never routes around a refusal."),
            AiRequestFailure.StreamInterrupted => ("StreamInterrupted", ErrorCategory.ReadError, "Run the request again; the partial answer is in the error's TargetObject."),
            AiRequestFailure.ModelNotFound => ("ModelNotFound", ErrorCategory.ObjectNotFound, "Pull the model on an Ollama server (the message names each server and the command), or choose another with -OllamaModel."),
            AiRequestFailure.ContingencyStateUnreadable => ("ContingencyStateUnreadable", ErrorCategory.ReadError, "Fix or delete the contingency state file named in the message (or copy its .last-good file over it), or set OLLAMACONTINUITY_UNREADABLE_STATE=Ollama to serve every request from Ollama meanwhile."),
            _ => ("FailoverNotApproved", ErrorCategory.OperationStopped, "Run interactively to approve, or pass -Force (or -Confirm:$false) to allow the failover."),
        };
        var message = _approvalProblem is null || e.Failure != AiRequestFailure.FailoverNotApproved ? e.Message : e.Message + " " + _approvalProblem;
        return new ErrorRecord(e, id, category, e.PartialText ?? target)
        {
            ErrorDetails = new ErrorDetails(message) { RecommendedAction = action },
        };
    }

    private bool FailoverPreApproved =>
        Force.IsPresent || (MyInvocation.BoundParameters.TryGetValue("Confirm", out var c) && c is SwitchParameter { IsPresent: false });

    private bool AskToFailOver(string question)
    {
        try
        {
            return ShouldContinue(question, "Confirm failover to Ollama");
        }
        catch (Exception e) when (e is PSInvalidOperationException or HostException or NotImplementedException or PSNotImplementedException or InvalidOperationException)
        {
            _approvalProblem = "The session is not interactive, so nobody could approve it; a compliance workflow is never failed over silently.";
            return false;
        }
    }

    /// <summary>Bridges the engine's callbacks to the pipeline thread.</summary>
    private sealed class Observer(InvokeAiRequestCommand cmdlet) : IFailoverObserver
    {
        public void OnVerbose(string message) => cmdlet.Post(() => cmdlet.Narrate(message));

        public void OnWarning(string message) => cmdlet.Post(() => cmdlet.Warn(message));

        public void OnToken(string text) => cmdlet.Post(() => cmdlet.Host?.UI?.Write(text));

        // The broken text stays on screen; the notice goes on its own line, and the new answer starts below it.
        public void OnStreamRescued(string notice) => cmdlet.Post(() =>
        {
            cmdlet.Host?.UI?.WriteLine();
            cmdlet.Host?.UI?.WriteLine(notice);
        });

        public void OnAttemptStarted(BackendEndpoint endpoint, int index, int count)
        {
            // Streaming writes tokens to the host; a progress bar would fight with them.
            if (!cmdlet.Stream.IsPresent)
            {
                cmdlet.AttemptStarted(endpoint.Role.ToString(), endpoint.Display, index, count);
            }
        }

        public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken) =>
            cmdlet.FailoverPreApproved ? new(true) : new(cmdlet.InvokeOnPipelineThreadAsync(() => cmdlet.AskToFailOver(question)));
    }
}

/// <summary>The backend parameters a cmdlet shares with Invoke-AiRequest (Start-FailoverDrill has the same ones).</summary>
internal interface IBackendParameters
{
    InvocationInfo MyInvocation { get; }
    string? CloudProvider { get; }
    string? CloudUri { get; }
    string? CloudModel { get; }
    SecureString? CloudApiKey { get; }
    double CloudTimeoutSec { get; }
    string[]? OllamaUri { get; }
    string? OllamaModel { get; }
    double OllamaTimeoutSec { get; }
    double ConnectTimeoutSec { get; }
    double FirstTokenTimeoutSec { get; }
    string? LogPath { get; }
}

/// <summary>
/// The backend parameters into <see cref="BackendOverrides"/>: only bound ones (and a -CloudApiKey given even as $null)
/// override; <see cref="BackendSettings.Resolve"/> does the rest (environment variables, defaults, every check).
/// </summary>
internal static class InvokeAiRequestSettings
{
    public static BackendPlan BuildPlan(IBackendParameters p) => BackendSettings.Resolve(ToOverrides(p));

    /// <summary>The parameter behind a <see cref="BackendOverrides"/> property, for error messages.</summary>
    internal static string ParameterName(string property) => "-" + property switch
    {
        nameof(BackendOverrides.OllamaUris) => nameof(IBackendParameters.OllamaUri),
        nameof(BackendOverrides.CloudTimeout) or nameof(BackendOverrides.OllamaTimeout) or nameof(BackendOverrides.ConnectTimeout) or nameof(BackendOverrides.FirstTokenTimeout) => property + "Sec",
        _ => property,
    };

    internal static BackendOverrides ToOverrides(IBackendParameters p)
    {
        var bound = p.MyInvocation.BoundParameters;
        TimeSpan? Seconds(string name, double value) => bound.ContainsKey(name) ? TimeSpan.FromSeconds(value) : null;
        var overrides = new BackendOverrides
        {
            SettingName = ParameterName,
            CloudProvider = p.CloudProvider is { } cp ? Enum.Parse<BackendKind>(cp, ignoreCase: true) : null,
            CloudUri = p.CloudUri,
            CloudModel = p.CloudModel,
            CloudTimeout = Seconds(nameof(p.CloudTimeoutSec), p.CloudTimeoutSec),
            OllamaUris = p.OllamaUri,
            OllamaModel = p.OllamaModel,
            OllamaTimeout = Seconds(nameof(p.OllamaTimeoutSec), p.OllamaTimeoutSec),
            ConnectTimeout = Seconds(nameof(p.ConnectTimeoutSec), p.ConnectTimeoutSec),
            FirstTokenTimeout = Seconds(nameof(p.FirstTokenTimeoutSec), p.FirstTokenTimeoutSec),
            // A relative -LogPath (or a PowerShell drive path: ~, Temp:) is relative to the PowerShell location
            // (Set-Location), not to the process's directory. A fully qualified file system path is taken as it is:
            // PowerShell's resolution would give the same path and costs 90-190 µs a request (bench/README, cmdlet).
            LogPath = p.LogPath is { } lp && !Path.IsPathFullyQualified(lp) && p is PSCmdlet cmdlet ? cmdlet.GetUnresolvedProviderPathFromPSPath(lp) : p.LogPath,
        };

        // -CloudApiKey given, even as $null or empty (a failed Get-Secret), must hold a key: only an absent key means "no cloud".
        return bound.ContainsKey(nameof(p.CloudApiKey)) || p.CloudApiKey is not null
            ? overrides with { CloudApiKey = p.CloudApiKey is { Length: > 0 } secure ? new NetworkCredential("", secure).Password : null }
            : overrides;
    }

    public static IReadOnlyList<ChatMessage> ToMessages(object[] items)
    {
        var list = new List<ChatMessage>(items.Length);
        foreach (var raw in items)
        {
            var item = raw is PSObject pso ? pso.BaseObject : raw;
            string? role, content;
            switch (item)
            {
                case string s:
                    (role, content) = ("user", s);
                    break;
                case IDictionary d:
                    role = Lookup(d, "role");
                    content = Lookup(d, "content");
                    break;
                case ChatMessage m:
                    (role, content) = (m.Role, m.Content);
                    break;
                default:
                    var o = raw as PSObject ?? PSObject.AsPSObject(raw);
                    role = o.Properties["Role"]?.Value?.ToString();
                    content = o.Properties["Content"]?.Value?.ToString();
                    break;
            }

            role = role?.Trim().ToLowerInvariant();
            if (role is not ("system" or "user" or "assistant"))
            {
                throw new ArgumentException($"Each message needs a Role of system, user or assistant; got '{role}'.") { Data = { ["id"] = "InvalidMessages" } };
            }

            if (content is null)
            {
                throw new ArgumentException("Each message needs a Content.") { Data = { ["id"] = "InvalidMessages" } };
            }

            list.Add(new ChatMessage(role, content));
        }

        return list;
    }

    private static string? Lookup(IDictionary d, string key)
    {
        foreach (DictionaryEntry e in d)
        {
            if (string.Equals(e.Key?.ToString(), key, StringComparison.OrdinalIgnoreCase))
            {
                return e.Value?.ToString();
            }
        }

        return null;
    }
}
