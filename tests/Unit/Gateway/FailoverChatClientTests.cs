using Microsoft.Extensions.AI;
using System.Text.Json.Nodes;
using OllamaContinuity.AI;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>The engine as a Microsoft.Extensions.AI <see cref="IChatClient"/>, used the way a .NET application does, against fake servers.</summary>
public sealed class FailoverChatClientTests : StandInBackendsTest
{
    private FailoverEngine _engine = null!;
    private string _log = "";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _engine = new FailoverEngine();
        _log = Path.Combine(TestPaths.New("chatclient"), "requests.jsonl");
    }

    public override async Task DisposeAsync()
    {
        _engine.Dispose();
        await base.DisposeAsync();
    }

    private IChatClient Client(Uri? cloudUri = null, string? workflow = null) => new FailoverChatClient(_engine,
        new BackendPlan(
            BackendEndpoint.Cloud(BackendKind.OpenAI, (cloudUri ?? Cloud.ChatUri).ToString(), "cloud-model", "sk-test", new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), Total = TimeSpan.FromSeconds(10) }),
            [BackendEndpoint.Ollama(Ollama.BaseUri.ToString(), "llama3.1:8b")]) { LogPath = _log },
        new FailoverChatClientOptions { Workflow = workflow });

    [Fact]
    public async Task GetResponseAsync_answers_from_the_cloud_and_says_who_served_it()
    {
        using var client = Client();
        var response = await client.GetResponseAsync([new AiChatMessage(ChatRole.System, "be brief"), new AiChatMessage(ChatRole.User, "hi")], new ChatOptions { MaxOutputTokens = 50, Temperature = 0.2f });
        Assert.Equal("cloud: reply to hi", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("fake-model", response.ModelId);
        Assert.Equal("Cloud", response.AdditionalProperties!["backend"]);
        Assert.Equal(7, response.Usage!.InputTokenCount);
        var sent = Cloud.Requests.Single().Json!;
        Assert.Equal(50, (int)sent["max_tokens"]!);
        Assert.Equal("system", (string?)sent["messages"]![0]!["role"]);
        Assert.True(File.Exists(_log)); // the same request log as Invoke-AiRequest
        Assert.Equal("OllamaContinuity", client.GetService<ChatClientMetadata>()!.ProviderName);
    }

    [Fact]
    public async Task GetResponseAsync_fails_over_to_Ollama_when_the_cloud_is_down()
    {
        using var client = Client(FakeAiServer.RefusedUri());
        var response = await client.GetResponseAsync("hi");
        Assert.Equal("ollama: reply to hi", response.Text);
        Assert.Equal("Ollama", response.AdditionalProperties!["backend"]);
        Assert.Equal("ConnectionRefused", response.AdditionalProperties["failoverReason"]);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_streams_updates_that_add_up_to_the_answer_after_a_failover()
    {
        Cloud.Fault = FaultSpec.Http(503);
        using var client = Client();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync("stream please"))
        {
            updates.Add(u);
        }

        Assert.True(updates.Count > 2);
        var response = updates.ToChatResponse();
        Assert.Equal("ollama: reply to stream please", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("Ollama", updates[^1].AdditionalProperties!["backend"]);
        Assert.Equal(11, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task A_content_policy_refusal_throws_and_is_never_routed_to_Ollama()
    {
        Cloud.Fault = FaultSpec.Http(400, """{"error":{"code":"content_policy_violation","message":"rejected","type":"invalid_request_error","param":null}}""");
        using var client = Client();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => client.GetResponseAsync("hi"));
        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        await Assert.ThrowsAsync<AiRequestException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync("hi"))
            {
            }
        });
        Assert.Equal(0, Ollama.Hits);
    }

    [Fact]
    public async Task The_workflow_routes_through_per_workflow_contingency()
    {
        var contingency = new WorkflowContingency();
        contingency.Workflows.Add("hr-records");
        _engine.AddContingencySource(contingency);
        using var client = Client(workflow: "general");
        Assert.Equal("Cloud", (await client.GetResponseAsync("a")).AdditionalProperties!["backend"]);
        var viaOptions = await client.GetResponseAsync("b", new ChatOptions { AdditionalProperties = new() { [FailoverChatClient.WorkflowKey] = "hr-records" } });
        Assert.Equal("Ollama", viaOptions.AdditionalProperties!["backend"]);
        Assert.Equal("Contingency", viaOptions.AdditionalProperties["failoverReason"]);
        Assert.Equal(1, Cloud.Hits);
    }

    [Fact]
    public async Task Tools_and_non_text_content_are_refused_before_anything_is_sent()
    {
        using var client = Client();
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync("hi", new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new AiChatMessage(ChatRole.User, [new DataContent(new byte[] { 1 }, "image/png")])]));
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
    }

    private static async Task<List<ChatResponseUpdate>> StreamAsync(IChatClient client, string prompt, List<ChatResponseUpdate>? into = null)
    {
        var updates = into ?? [];
        await foreach (var u in client.GetStreamingResponseAsync(prompt))
        {
            updates.Add(u);
        }

        return updates;
    }

    private JsonNode[] LogLines() => File.ReadAllLines(_log).Select(l => JsonNode.Parse(l)!).ToArray();

    [Fact]
    public async Task A_cloud_stream_cut_after_text_is_continued_by_Ollama_and_the_updates_add_up_to_one_answer()
    {
        Cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 3 };
        using var client = Client(workflow: "billing");
        var updates = await StreamAsync(client, "tell me more");
        var streamedText = string.Concat(updates.Select(u => u.Text));
        var response = updates.ToChatResponse();

        // The cloud's first words, then Ollama's continuation of them: never the answer twice, never a restart.
        var continuation = Ollama.Requests.Single().Json!["messages"]!.AsArray();
        var partial = (string)continuation[^1]!["content"]!;
        Assert.Equal("assistant", (string?)continuation[^1]!["role"]);
        Assert.StartsWith("cloud: reply", partial);
        Assert.Equal(partial + "ollama: reply to tell me more", streamedText);
        Assert.Equal(streamedText, response.Text);
        // ToChatResponse() keeps the last update's route on the combined message.
        var route = Assert.Single(response.Messages).AdditionalProperties!;
        Assert.Equal("Ollama", route["backend"]);
        Assert.False(string.IsNullOrEmpty(route["failoverReason"] as string));

        // The request log: one line naming both attempts, the workflow and the request id the client returned.
        var line = Assert.Single(LogLines());
        Assert.Equal(response.ResponseId, (string?)line["requestId"]);
        Assert.Equal("billing", (string?)line["workflow"]);
        Assert.Equal("Ollama", (string?)line["backend"]);
        Assert.Equal(["Cloud", "Ollama"], line["attempts"]!.AsArray().Select(a => (string?)a!["backend"]));
        Assert.Null(line["prompt"]); // no content unless LogContent
    }

    [Fact]
    public async Task A_stream_Ollama_can_only_restart_ends_in_StreamInterrupted_and_never_repeats_the_answer()
    {
        Cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 3 };
        Ollama.RejectTrailingAssistant = true;
        using var client = Client();
        var updates = new List<ChatResponseUpdate>();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => StreamAsync(client, "tell me more", updates));
        Assert.Equal(AiRequestFailure.StreamInterrupted, e.Failure);
        var streamedText = string.Concat(updates.Select(u => u.Text));
        Assert.StartsWith("cloud: reply", streamedText);
        Assert.DoesNotContain("ollama", streamedText); // the restarted answer is not appended to the broken one
        Assert.Equal(2, Ollama.Hits); // the continuation, rejected, then the restart
    }

    [Fact]
    public async Task GetResponseAsync_after_a_failover_logs_the_route_and_with_LogContent_the_prompt_and_answer()
    {
        Cloud.Fault = FaultSpec.Http(503);
        using var client = new FailoverChatClient(_engine,
            new BackendPlan(BackendEndpoint.Cloud(BackendKind.OpenAI, Cloud.ChatUri.ToString(), "cloud-model", "sk-test"), [BackendEndpoint.Ollama(Ollama.BaseUri.ToString(), "llama3.1:8b")]) { LogPath = _log },
            new FailoverChatClientOptions { LogContent = true, Workflow = "support" });
        var response = await client.GetResponseAsync("where is my order");
        Assert.Equal("ollama: reply to where is my order", response.Text);
        Assert.Equal("Ollama", response.Messages[^1].AdditionalProperties!["backend"]); // where a stream's route ends up too
        Assert.Equal("ServerError", response.AdditionalProperties!["failoverReason"]);
        var line = Assert.Single(LogLines());
        Assert.Equal(response.ResponseId, (string?)line["requestId"]);
        Assert.Equal("support", (string?)line["workflow"]);
        Assert.Equal("Ollama", (string?)line["backend"]);
        Assert.Equal("ServerError", (string?)line["failoverReason"]);
        Assert.Equal("Cloud", (string?)line["attempts"]![0]!["backend"]);
        Assert.Contains("where is my order", line.ToJsonString());
        Assert.Contains("ollama: reply to where is my order", line.ToJsonString());
    }

    [Fact]
    public async Task FromEnvironment_resolves_the_settings_like_the_cmdlet_with_explicit_values_winning()
    {
        Cloud.Fault = FaultSpec.Http(503);
        using var client = FailoverChatClient.FromEnvironment(new BackendOverrides
        {
            CloudUri = Cloud.ChatUri.ToString(),
            CloudApiKey = "sk-from-overrides-0123",
            CloudModel = "cloud-model",
            OllamaUris = [FakeAiServer.RefusedUri("/").ToString(), Ollama.BaseUri.ToString()],
            OllamaModel = "local-model",
            LogPath = _log,
        }, new FailoverChatClientOptions { Workflow = "env" }, _engine);
        var response = await client.GetResponseAsync("hi");
        Assert.Equal("ollama: reply to hi", response.Text);
        Assert.Equal("Bearer sk-from-overrides-0123", Cloud.Requests.First().Headers["Authorization"]);
        Assert.Equal("local-model", (string?)Ollama.Requests.Single().Json!["model"]);
        Assert.Equal(4, (int)LogLines().Single()["attempts"]!.AsArray().Count); // cloud, its retry, the refused Ollama, the second Ollama
        Assert.Same(_engine, client.GetService<FailoverEngine>());
    }

    [Fact]
    public void FromEnvironment_checks_every_setting_before_any_request_and_defaults_to_the_process_engine()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => FailoverChatClient.FromEnvironment(new BackendOverrides { CloudApiKey = "sk-\r\nX: 1", OllamaUris = [Ollama.BaseUri.ToString()] }));
        Assert.Equal("InvalidCloudApiKey", e.ParamName);
        Assert.Equal("InvalidOllamaUri", Assert.ThrowsAny<ArgumentException>(() => FailoverChatClient.FromEnvironment(new BackendOverrides { OllamaUris = ["ftp://x"] })).ParamName);
        Assert.Equal("InvalidTimeout", Assert.ThrowsAny<ArgumentException>(() => FailoverChatClient.FromEnvironment(new BackendOverrides { ConnectTimeout = TimeSpan.Zero })).ParamName);
        Assert.Equal(0, Cloud.Hits + Ollama.Hits);
        using var client = FailoverChatClient.FromEnvironment(new BackendOverrides { CloudApiKey = "sk-ok-0123456789", OllamaUris = [Ollama.BaseUri.ToString()] });
        Assert.Same(FailoverEngine.Shared, client.GetService<FailoverEngine>());
    }
}
