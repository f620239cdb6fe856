using System.Diagnostics;
using System.Text.Json.Nodes;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// Real clients no one here wrote: the official <c>openai</c>, <c>@anthropic-ai/sdk</c> and <c>ollama</c> npm packages
/// (pinned in tests/Gateway/package-lock.json, installed with <c>npm ci</c>) run by node against the gateway, with the
/// fake cloud and Ollama behind it. Skipped, saying why, when node or npm is missing or the install fails.
/// </summary>
public sealed class SdkTests
{
    private static readonly Lazy<(string? Dir, string? Problem)> Setup = new(Install, LazyThreadSafetyMode.ExecutionAndPublication);

    [SkippableFact]
    public async Task OpenAI_sdk_plain_answer_with_route_headers()
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "openai", "plain");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("cloud: reply to hello gateway", (string?)r["text"]);
        Assert.Equal("stop", (string?)r["finish"]);
        Assert.Equal("Cloud", (string?)r["backend"]);
        Assert.Null((string?)r["reason"]);
    }

    [SkippableFact]
    public async Task OpenAI_sdk_cloud_outage_fails_over_inside_one_call()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = new FaultSpec(FaultKind.ResetBeforeHeaders);
        var r = await RunAsync(g, "openai", "plain");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("ollama: reply to hello gateway", (string?)r["text"]);
        Assert.Equal("Ollama", (string?)r["backend"]);
        Assert.Equal("ConnectionReset", (string?)r["reason"]);
        // A reset is retried once on the cloud before the failover, all inside the SDK's one call.
        Assert.Equal((2, 1), (g.Cloud.Hits, g.Ollama.Hits));
    }

    [SkippableFact]
    public async Task OpenAI_sdk_stream_fails_over_before_the_first_token()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = FaultSpec.Http(503);
        var r = await RunAsync(g, "openai", "stream");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("ollama: reply to hello gateway", (string?)r["text"]);
        Assert.True((int)r["chunks"]! > 2);
        Assert.Equal("Ollama", (string?)r["backend"]);
        Assert.Equal("ServerError", (string?)r["reason"]);
    }

    [SkippableFact]
    public async Task OpenAI_sdk_content_policy_400_is_the_sdks_BadRequestError_and_not_routed_around()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = FaultSpec.Http(400, """{"error":{"code":"content_policy_violation","message":"Your request was rejected as a result of our safety system.","param":null,"type":"invalid_request_error"}}""");
        var r = await RunAsync(g, "openai", "plain");
        Assert.False((bool)r["ok"]!);
        Assert.Equal("BadRequestError", (string?)r["error"]!["name"]);
        Assert.Equal(400, (int)r["error"]!["status"]!);
        Assert.Equal("content_policy_violation", (string?)r["error"]!["code"]);
        Assert.Contains("safety system", (string?)r["error"]!["message"]);
        Assert.Equal(0, g.Ollama.Hits);
    }

    [SkippableFact]
    public async Task OpenAI_sdk_wrong_token_is_the_sdks_AuthenticationError()
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "openai", "plain", token: "oc_not_a_token_of_this_gateway_000");
        Assert.False((bool)r["ok"]!);
        Assert.Equal("AuthenticationError", (string?)r["error"]!["name"]);
        Assert.Equal(401, (int)r["error"]!["status"]!);
        Assert.Equal(0, g.Cloud.Hits + g.Ollama.Hits);
    }

    [SkippableFact]
    public async Task OpenAI_sdk_stream_cut_after_text_is_rescued_inside_one_call_continued_never_truncated()
    {
        await using var g = await GatewayHarness.StartAsync(cloudTimeouts: new Failover.BackendTimeouts { Total = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(2), Stall = TimeSpan.FromMilliseconds(400) });
        g.Cloud.Answer = _ => "a long answer that will be cut in the middle of it";
        g.Cloud.Fault = new FaultSpec(FaultKind.StallMidStream);
        var r = await RunAsync(g, "openai", "stream");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        var text = (string?)r["text"] ?? "";
        // The cloud's part, then Ollama's continuation of it (sent the partial answer as the last assistant message).
        Assert.StartsWith("a long answer", text);
        Assert.Matches("ollama: reply to [^\\n]+$", text);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(text, "a long answer"));
    }

    [SkippableFact]
    public async Task OpenAI_sdk_stream_cut_after_text_that_cannot_be_continued_raises_the_sdks_error_never_duplicated_text()
    {
        await using var g = await GatewayHarness.StartAsync(cloudTimeouts: new Failover.BackendTimeouts { Total = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(2), Stall = TimeSpan.FromMilliseconds(400) });
        g.Cloud.Answer = _ => "a long answer that will be cut in the middle of it";
        g.Cloud.Fault = new FaultSpec(FaultKind.StallMidStream);
        g.Ollama.RejectTrailingAssistant = true;
        var r = await RunAsync(g, "openai", "stream");
        Assert.False((bool)r["ok"]!, r.ToJsonString());
        Assert.True((bool)r["error"]!["isApiError"]!, r.ToJsonString());
        Assert.Contains("restarted", (string?)r["error"]!["message"], StringComparison.OrdinalIgnoreCase);
    }

    internal static async Task<JsonNode> RunAsync(GatewayHarness g, string sdk, string mode, string token = GatewayHarness.AppToken)
    {
        var (dir, problem) = Setup.Value;
        Skip.If(dir is null, problem);
        var psi = new ProcessStartInfo("node", ["sdk.mjs", sdk, mode])
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["GATEWAY_URL"] = g.Uri.ToString().TrimEnd('/');
        psi.Environment["GATEWAY_TOKEN"] = token;
        psi.Environment["GATEWAY_MODEL"] = sdk == "ollama" ? "llama3.1:8b" : "ollamacontinuity";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        var lines = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length > 0, "node printed nothing; stderr: " + await stderr);
        return JsonNode.Parse(lines[^1])!;
    }

    /// <summary>Finds tests/Gateway and runs <c>npm ci</c> there once per test run (unless node_modules is up to date).</summary>
    private static (string? Dir, string? Problem) Install()
    {
        string? dir = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "tests", "Gateway");
            if (File.Exists(Path.Combine(candidate, "package-lock.json")))
            {
                dir = candidate;
                break;
            }
        }

        if (dir is null)
        {
            return (null, "tests/Gateway/package-lock.json not found above " + AppContext.BaseDirectory);
        }

        if (Require.Which("node") is null || Require.Which("npm") is null)
        {
            return (null, "node and npm are not installed: the official SDK tests cannot run");
        }

        var installed = Path.Combine(dir, "node_modules", ".package-lock.json");
        if (File.Exists(installed) && File.GetLastWriteTimeUtc(installed) >= File.GetLastWriteTimeUtc(Path.Combine(dir, "package-lock.json")))
        {
            return (dir, null);
        }

        var psi = new ProcessStartInfo("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            return (null, "npm ci did not finish in 3 minutes");
        }

        return p.ExitCode == 0 ? (dir, null) : (null, "npm ci failed: " + err.Result.Trim());
    }
}

/// <summary>The official @anthropic-ai/sdk SDK against the gateway (a class of its own so the SDK classes run in parallel).</summary>
public sealed class AnthropicSdkTests
{
    [SkippableFact]
    public async Task Anthropic_sdk_plain_answer_from_an_OpenAI_cloud()
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "anthropic", "plain");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("cloud: reply to hello gateway", (string?)r["text"]);
        Assert.Equal("end_turn", (string?)r["stop"]);
        Assert.Equal("Cloud", (string?)r["backend"]);
    }

    [SkippableFact]
    public async Task Anthropic_sdk_stream_fails_over_on_overload()
    {
        await using var g = await GatewayHarness.StartAsync(FakeApi.Anthropic);
        g.Cloud.Fault = FaultSpec.Http(529);
        var r = await RunAsync(g, "anthropic", "stream");
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("ollama: reply to hello gateway", (string?)r["text"]);
        Assert.Equal((string?)r["text"], (string?)r["final"]);
        Assert.Equal(1, g.Ollama.Hits);
    }

    [SkippableFact]
    public async Task Anthropic_sdk_content_policy_refusal_is_the_sdks_BadRequestError()
    {
        await using var g = await GatewayHarness.StartAsync();
        g.Cloud.Fault = FaultSpec.Http(400, """{"error":{"code":"content_policy_violation","message":"rejected by the safety system","param":null,"type":"invalid_request_error"}}""");
        var r = await RunAsync(g, "anthropic", "plain");
        Assert.False((bool)r["ok"]!);
        Assert.Equal("BadRequestError", (string?)r["error"]!["name"]);
        Assert.Equal(400, (int)r["error"]!["status"]!);
        Assert.Contains("safety system", (string?)r["error"]!["message"]);
        Assert.Equal(0, g.Ollama.Hits);
    }

    [SkippableFact]
    public async Task Anthropic_sdk_wrong_token_is_the_sdks_AuthenticationError()
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "anthropic", "plain", token: "oc_not_a_token_of_this_gateway_000");
        Assert.False((bool)r["ok"]!);
        Assert.Equal("AuthenticationError", (string?)r["error"]!["name"]);
        Assert.Equal(401, (int)r["error"]!["status"]!);
    }

    private static Task<JsonNode> RunAsync(GatewayHarness g, string sdk, string mode, string token = GatewayHarness.AppToken) => SdkTests.RunAsync(g, sdk, mode, token);
}

/// <summary>The official ollama SDK against the gateway (a class of its own so the SDK classes run in parallel).</summary>
public sealed class OllamaSdkTests
{
    [SkippableTheory]
    [InlineData("plain")]
    [InlineData("stream")]
    [InlineData("generate")]
    [InlineData("generate-stream")]
    public async Task Ollama_sdk_gets_cloud_first_then_Ollama_on_failure(string mode)
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "ollama", mode);
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("cloud: reply to hello gateway", (string?)r["text"]);

        g.Cloud.Fault = new FaultSpec(FaultKind.ResetBeforeHeaders);
        r = await RunAsync(g, "ollama", mode);
        Assert.True((bool)r["ok"]!, r.ToJsonString());
        Assert.Equal("ollama: reply to hello gateway", (string?)r["text"]);
    }

    [SkippableFact]
    public async Task Ollama_sdk_without_a_token_gets_its_ResponseError_401()
    {
        await using var g = await GatewayHarness.StartAsync();
        var r = await RunAsync(g, "ollama", "plain", token: "");
        Assert.False((bool)r["ok"]!);
        Assert.Equal("ResponseError", (string?)r["error"]!["name"]);
        Assert.Equal(401, (int)r["error"]!["status"]!);
        Assert.Contains("client token", (string?)r["error"]!["message"]);
    }

    private static Task<JsonNode> RunAsync(GatewayHarness g, string sdk, string mode, string token = GatewayHarness.AppToken) => SdkTests.RunAsync(g, sdk, mode, token);
}
