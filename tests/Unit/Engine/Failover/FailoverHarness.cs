using System.Collections.Concurrent;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>Records what the engine tells its caller.</summary>
internal sealed class RecordingObserver : IFailoverObserver
{
    public ConcurrentQueue<string> Verbose { get; } = new();
    public ConcurrentQueue<string> Warnings { get; } = new();
    public ConcurrentQueue<string> Tokens { get; } = new();
    public ConcurrentQueue<string> Notices { get; } = new();
    public bool Approve { get; set; } = true;
    public int ApprovalsAsked;

    public void OnVerbose(string message) => Verbose.Enqueue(message);
    public void OnWarning(string message) => Warnings.Enqueue(message);
    public void OnToken(string text) => Tokens.Enqueue(text);
    public void OnStreamRescued(string notice) => Notices.Enqueue(notice);

    public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref ApprovalsAsked);
        return new(Approve);
    }
}

internal static class Harness
{
    public const string CanaryKey = "sk-CANARY-7f3e9b2c4d1a8e6f0b5c";

    /// <summary>
    /// Short timeouts so that timeout rows run in about a second. The connect timeout is 2 s: a loopback connect
    /// never takes that long, but a busy 2-core machine can delay its completion by hundreds of milliseconds; the
    /// connect-timeout row sets its own.
    /// </summary>
    public static BackendTimeouts Fast { get; } = new()
    {
        Connect = TimeSpan.FromSeconds(2),
        FirstToken = TimeSpan.FromMilliseconds(700),
        Stall = TimeSpan.FromMilliseconds(700),
        Total = TimeSpan.FromMilliseconds(1500),
    };

    /// <summary>For tests that time nothing: long enough for a loaded 2-core machine.</summary>
    public static BackendTimeouts Relaxed { get; } = new()
    {
        Connect = TimeSpan.FromSeconds(5),
        FirstToken = TimeSpan.FromSeconds(10),
        Total = TimeSpan.FromSeconds(20),
    };

    public static AiRequest Request(string prompt = "hello", bool stream = false, string? workflow = null, bool approval = false, bool logContent = false) => new()
    {
        Messages = [new ChatMessage("user", prompt)],
        Stream = stream,
        Workflow = workflow,
        RequireFailoverApproval = approval,
        LogContent = logContent,
    };

    public static BackendEndpoint Cloud(FakeAiServer server, BackendTimeouts? t = null) =>
        BackendEndpoint.Cloud(server.Api == FakeApi.Anthropic ? BackendKind.Anthropic : BackendKind.OpenAI, server.ChatUri.ToString(), "cloud-model", CanaryKey, t ?? Fast);

    public static BackendEndpoint Cloud(Uri uri, BackendKind kind = BackendKind.OpenAI, BackendTimeouts? t = null) =>
        BackendEndpoint.Cloud(kind, uri.ToString(), "cloud-model", CanaryKey, t ?? Fast);

    public static BackendEndpoint Ollama(FakeAiServer server, BackendTimeouts? t = null) =>
        BackendEndpoint.Ollama(server.BaseUri.ToString(), "llama3.1:8b", t ?? Fast);

    public static BackendPlan Plan(BackendEndpoint? cloud, string logPath, params BackendEndpoint[] ollama) => new(cloud, ollama) { LogPath = logPath };

    public static string TempLog() => Path.Combine(TestPaths.New("tests"), "requests.jsonl");
}
