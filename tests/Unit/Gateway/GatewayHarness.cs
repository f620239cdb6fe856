using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;
using Microsoft.AspNetCore.Builder;

namespace OllamaContinuity.Gateway.Tests;

internal static class AssemblySetup
{
    [ModuleInitializer]
    internal static void Initialize()
    {
        TestState.Isolate();
        TestThreadPool.Raise();
    }
}

/// <summary>
/// A gateway on a free loopback port over its own engine, with a fake cloud (OpenAI unless told) and a fake
/// Ollama behind it, and a tokens file with two clients: 'app' (no workflow) and 'hr' (workflow hr-records).
/// </summary>
internal sealed class GatewayHarness : IAsyncDisposable
{
    public const string AppToken = "oc_test_app_token_0123456789abcdef";
    public const string HrToken = "oc_test_hr_token_0123456789abcdefgh";

    private readonly WebApplication _app;

    private GatewayHarness(WebApplication app, FakeAiServer cloud, FakeAiServer ollama, FailoverEngine engine, Uri uri, string dir)
    {
        _app = app;
        Cloud = cloud;
        Ollama = ollama;
        Engine = engine;
        Uri = uri;
        Directory = dir;
        Http = new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(30) };
    }

    public FakeAiServer Cloud { get; }
    public FakeAiServer Ollama { get; }
    public FailoverEngine Engine { get; }
    public Uri Uri { get; }
    public string Directory { get; }
    public HttpClient Http { get; }
    public string LogPath => Path.Combine(Directory, "requests.jsonl");

    public static async Task<GatewayHarness> StartAsync(FakeApi cloudApi = FakeApi.OpenAI, Func<GatewayOptions, GatewayOptions>? configure = null,
        BackendTimeouts? cloudTimeouts = null, IContingencySource? contingency = null, Action<WebApplication>? beforeStart = null)
    {
        var dir = TestPaths.New("gateway");
        System.IO.Directory.CreateDirectory(dir);
        var tokensFile = Path.Combine(dir, "tokens.json");
        await File.WriteAllTextAsync(tokensFile, $$"""
            {"tokens":[{"name":"app","token":"{{AppToken}}"},{"name":"hr","token":"{{HrToken}}","workflow":"hr-records"}]}
            """);
        var cloud = FakeAiServer.Start(cloudApi, "cloud");
        var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var plan = new BackendPlan(
            BackendEndpoint.Cloud(cloudApi == FakeApi.Anthropic ? BackendKind.Anthropic : BackendKind.OpenAI, cloud.ChatUri.ToString(), "cloud-model", "sk-test-cloud-key",
                cloudTimeouts ?? new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), Total = TimeSpan.FromSeconds(10), FirstToken = TimeSpan.FromSeconds(5) }),
            [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b", new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), Total = TimeSpan.FromSeconds(10) })])
        {
            LogPath = Path.Combine(dir, "requests.jsonl"),
        };
        var engine = new FailoverEngine();
        if (contingency is not null)
        {
            engine.AddContingencySource(contingency);
        }

        var options = new GatewayOptions { Port = 0, TokensFile = tokensFile };
        options = configure?.Invoke(options) ?? options;
        var tokens = ClientTokens.Load(options.TokensFile!);
        var app = GatewayApp.Build(options, tokens, engine, plan, Microsoft.Extensions.Logging.LogLevel.Error);
        beforeStart?.Invoke(app);
        await app.StartAsync();
        return new GatewayHarness(app, cloud, ollama, engine, GatewayApp.ListeningUri(app), dir);
    }

    public HttpRequestMessage Post(string path, string json, string? token = AppToken)
    {
        var m = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (token is not null)
        {
            m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return m;
    }

    public async Task<(HttpResponseMessage Response, string Body)> SendAsync(HttpRequestMessage m)
    {
        var r = await Http.SendAsync(m);
        return (r, await r.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// The text pieces of an OpenAI-format SSE body, in order: the delta content of each complete event (one ended by a
    /// blank line; a body read half-way may end in part of one).
    /// </summary>
    public static List<string> OpenAIDeltas(string body)
    {
        var complete = body[..(body.LastIndexOf("\n\n", StringComparison.Ordinal) + 1)];
        return complete.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(e => e.StartsWith("data: {", StringComparison.Ordinal))
            .Select(e => (string?)System.Text.Json.Nodes.JsonNode.Parse(e[6..])!["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"])
            .Where(t => !string.IsNullOrEmpty(t))
            .Select(t => t!)
            .ToList();
    }

    public static string Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? string.Join(",", v) : "";

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Engine.Dispose();
        await Cloud.DisposeAsync();
        await Ollama.DisposeAsync();
    }
}

/// <summary>A contingency switch a test flips (per workflow), as Enable-AiContingency -Workflow does.</summary>
internal sealed class WorkflowContingency : IContingencySource
{
    public HashSet<string> Workflows { get; } = new(StringComparer.OrdinalIgnoreCase);

    public ContingencyDecision? Evaluate(string? workflow, DateTimeOffset now) =>
        workflow is not null && Workflows.Contains(workflow) ? new ContingencyDecision("Process", "test") : null;
}
