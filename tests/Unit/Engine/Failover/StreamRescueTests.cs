using System.Diagnostics;
using System.Text.Json.Nodes;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// A stream that breaks after text was shown (cut, stall, in-band error) is rescued on the next backend: restarted
/// from scratch with a notice (the default), continued, or (None) left as StreamInterrupted. Real sockets.
/// </summary>
public sealed class StreamRescueTests
{
    /// <summary>A stall after 1.5 s of silence; otherwise long enough for a loaded machine.</summary>
    internal static readonly BackendTimeouts T = new() { Connect = TimeSpan.FromSeconds(5), FirstToken = TimeSpan.FromSeconds(10), Stall = TimeSpan.FromSeconds(1.5), Total = TimeSpan.FromSeconds(20) };

    internal static readonly string SixtyWords = string.Join(" ", Enumerable.Range(1, 60).Select(i => "w" + i));
    internal static readonly string FortyWords = string.Join("", SixtyWords.Split(' ').Take(40).Select(w => w + " "));

    private static AiRequest Streamed(StreamRescueMode? mode = null, bool thinking = false) => new()
    {
        Messages = [new ChatMessage("user", "hello")],
        Stream = true,
        StreamRescue = mode,
        IncludeThinking = thinking,
    };

    public static TheoryData<FakeApi, FaultKind, string> Breaks => new()
    {
        { FakeApi.OpenAI, FaultKind.CutAfterWords, "" },
        { FakeApi.Anthropic, FaultKind.CutAfterWords, "" },
        { FakeApi.OpenAI, FaultKind.StallAfterWords, "StallTimeout" },
        { FakeApi.Anthropic, FaultKind.StallAfterWords, "StallTimeout" },
        { FakeApi.OpenAI, FaultKind.ErrorAfterWords, "StreamError" },
        { FakeApi.Anthropic, FaultKind.ErrorAfterWords, "StreamError" },
    };

    [Theory]
    [MemberData(nameof(Breaks))]
    public async Task A_cloud_stream_that_breaks_after_40_words_is_restarted_on_Ollama_with_a_notice(FakeApi api, FaultKind fault, string cls)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => SixtyWords;
        cloud.Fault = new FaultSpec(fault) { Words = 40 };
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ollama: reply to hello", r.Text);
        var broken = r.Attempts[0];
        Assert.Equal("Failed", broken.Outcome);
        Assert.Equal(FortyWords, broken.PartialText);
        if (cls.Length > 0)
        {
            Assert.Equal(cls, broken.FailureClass);
        }
        else
        {
            Assert.Contains(broken.FailureClass, new[] { "StreamTruncated", "ConnectionReset" });
        }

        Assert.Equal(broken.FailureClass, r.FailoverReason);
        // The host saw the partial text, one notice where it stopped, then Ollama's whole answer: nothing duplicated silently.
        var notice = Assert.Single(observer.Notices);
        Assert.Contains("restarts", notice);
        Assert.DoesNotContain('\n', notice);
        Assert.Equal(FortyWords + "ollama: reply to hello", string.Concat(observer.Tokens));
        // Ollama got the original conversation, not the partial answer.
        Assert.Equal("user", ollama.Requests.Single().Json!["messages"]!.AsArray()[^1]!["role"]!.GetValue<string>());
    }

    [Fact]
    public async Task Continue_sends_the_partial_answer_as_the_last_assistant_message_and_returns_it_continued()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => SixtyWords;
        cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 40 };
        ollama.Answer = _ => "w41 w42";
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Streamed(StreamRescueMode.Continue), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal(FortyWords + "w41 w42", r.Text);
        var messages = ollama.Requests.Single().Json!["messages"]!.AsArray();
        Assert.Equal("assistant", messages[^1]!["role"]!.GetValue<string>());
        Assert.Equal(FortyWords, messages[^1]!["content"]!.GetValue<string>());
        Assert.Empty(observer.Notices);
        Assert.Equal(r.Text, string.Concat(observer.Tokens));
    }

    [Fact]
    public async Task Continue_against_an_Ollama_that_rejects_a_trailing_assistant_message_restarts_cleanly()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => SixtyWords;
        cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 40 };
        ollama.RejectTrailingAssistant = true;
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Streamed(StreamRescueMode.Continue), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ollama: reply to hello", r.Text);
        Assert.Equal(new[] { "Failed", "Failed", "Success" }, r.Attempts.Select(a => a.Outcome));
        Assert.Equal("BadRequest", r.Attempts[1].FailureClass);
        Assert.Equal(2, ollama.Hits);
        var notice = Assert.Single(observer.Notices);
        Assert.Contains("could not continue", notice);
        Assert.Equal(FortyWords + "ollama: reply to hello", string.Concat(observer.Tokens));
    }

    [Fact]
    public async Task An_Ollama_stream_that_breaks_is_rescued_on_the_next_Ollama_server()
    {
        await using var first = FakeAiServer.Start(FakeApi.Ollama, "ollama-a");
        await using var second = FakeAiServer.Start(FakeApi.Ollama, "ollama-b");
        first.Answer = _ => SixtyWords;
        first.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 10 };
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(null, Harness.TempLog(), Harness.Ollama(first, T), Harness.Ollama(second, T)), observer);

        Assert.Equal("ollama-b: reply to hello", r.Text);
        Assert.Equal(second.BaseUri + "api/chat", r.Endpoint);
        Assert.StartsWith("w1 w2 ", r.Attempts[0].PartialText);
        Assert.Single(observer.Notices);
    }

    [Fact]
    public async Task The_last_Ollama_server_breaking_mid_stream_is_StreamInterrupted_with_the_partial_text()
    {
        await using var only = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        only.Answer = _ => SixtyWords;
        only.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 10 };
        using var engine = new FailoverEngine();

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Streamed(), Harness.Plan(null, Harness.TempLog(), Harness.Ollama(only, T))));

        Assert.Equal(AiRequestFailure.StreamInterrupted, e.Failure);
        Assert.StartsWith("w1 w2 ", e.PartialText);
    }

    [SkippableFact]
    public async Task A_recorded_OpenAI_stream_cut_without_finish_or_DONE_is_rescued()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = WireFixture.Spec("oa_st_cut_no_done.sse");
        using var engine = new FailoverEngine();
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)), observer);

        Assert.Equal("ollama: reply to hello", r.Text);
        Assert.Equal("StreamTruncated", r.FailoverReason);
        Assert.False(string.IsNullOrEmpty(r.Attempts[0].PartialText));
        Assert.Single(observer.Notices);
    }

    [Fact]
    public async Task Without_Stream_the_same_faults_still_fail_over()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Fault = new FaultSpec(FaultKind.ResetMidBody);
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(cloud, T), Harness.TempLog(), Harness.Ollama(ollama, T)));

        Assert.Equal("ollama: reply to hello", r.Text);
        Assert.Null(r.Attempts[0].PartialText);
    }

    [Fact]
    public async Task A_rescue_is_in_the_request_log_with_the_partial_length_but_not_the_text()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => SixtyWords;
        cloud.Fault = new FaultSpec(FaultKind.ErrorAfterWords) { Words = 40 };
        using var engine = new FailoverEngine();
        var log = Harness.TempLog();

        await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(cloud, T), log, Harness.Ollama(ollama, T)));

        var line = JsonNode.Parse(File.ReadAllLines(log).Single())!;
        Assert.Equal(FortyWords.Length, line["attempts"]![0]!["partialChars"]!.GetValue<int>());
        Assert.Null(line["attempts"]![0]!["partialText"]);
        Assert.Equal("stop", line["finishReason"]!.GetValue<string>());
    }
}
