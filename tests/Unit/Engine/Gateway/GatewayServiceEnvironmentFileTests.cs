using OllamaContinuity.Gateway;

namespace OllamaContinuity.Tests.Gateway;

/// <summary>
/// The gateway's settings file (gateway.env): what Install-AiGateway renders, the gateway parses back to the same
/// values (the Windows service reads it with --environment-file), and anything else is refused without its value.
/// </summary>
public sealed class GatewayServiceEnvironmentFileTests
{
    public static TheoryData<string> Awkward =>
    [
        "",
        "plain",
        "it's",
        "'",
        "''",
        "\"",
        "\"double\" only",
        "it's \"both\"",
        "back\\slash",
        "\\",
        "ends with a backslash\\",
        "it's a \\ before '",
        "$HOME ${X} $(rm -rf /) `id`",
        "it's $HOME `id` \\$ \\`",
        "  spaces around  ",
        "a=b==c=",
        "#not a comment",
        "ünïcødé ключ 鍵 🔑",
        "it's ünïcødé 🔑 \"x\" \\ $",
        "https://user:pass@host/v1?key=a&b='c'",
    ];

    [Theory]
    [MemberData(nameof(Awkward))]
    public void Every_value_round_trips_exactly_alone_and_among_others(string value)
    {
        var settings = new Dictionary<string, string>
        {
            ["CLOUD_API_KEY"] = value,
            ["CLOUD_MODEL"] = value + "'",
            ["OLLAMA_URL"] = "http://127.0.0.1:11434",
            ["MY_OWN_SETTING"] = value.Replace("'", "", StringComparison.Ordinal),
        };

        var text = GatewayServicePlanner.RenderEnvironmentFile(settings);
        Assert.Equal(settings, GatewayServicePlanner.ParseEnvironmentFile(text));
        Assert.Equal(settings, GatewayServicePlanner.ParseEnvironmentFile(text.Replace("\n", "\r\n", StringComparison.Ordinal)));
        Assert.Equal(settings, GatewayServicePlanner.ParseEnvironmentFile(GatewayServicePlanner.RenderEnvironmentFile(settings, header: GatewayServicePlanner.WindowsEnvironmentHeader)));
    }

    [Fact]
    public void Comments_blank_lines_and_unknown_keys_are_read_and_a_later_line_wins()
    {
        var parsed = GatewayServicePlanner.ParseEnvironmentFile("# header\n\n   \n  # indented comment\nUNKNOWN_THING='x'\nOLLAMA_URL='a'\nOLLAMA_URL=\"b\"\n");
        Assert.Equal(new Dictionary<string, string> { ["UNKNOWN_THING"] = "x", ["OLLAMA_URL"] = "b" }, parsed);
        Assert.Empty(GatewayServicePlanner.ParseEnvironmentFile(""));
    }

    [Theory]
    [InlineData("CLOUD_API_KEY=sk-SECRET-unquoted", "line 1", "CLOUD_API_KEY")]
    [InlineData("# ok\nCLOUD_API_KEY='sk-SECRET-open", "line 2", "CLOUD_API_KEY")]
    [InlineData("CLOUD_API_KEY='sk-SECRET'x'", "line 1", "CLOUD_API_KEY")]
    [InlineData("CLOUD_API_KEY=\"sk-SECRET\\n\"", "line 1", "CLOUD_API_KEY")]
    [InlineData("CLOUD_API_KEY=\"sk-SECRET\"\"", "line 1", "CLOUD_API_KEY")]
    [InlineData("CLOUD_API_KEY=\"sk-SECRET$HOME\"", "line 1", "CLOUD_API_KEY")]
    [InlineData("CLOUD_API_KEY='sk-SECRET\"", "line 1", "CLOUD_API_KEY")]
    [InlineData("export CLOUD_API_KEY='sk-SECRET'", "line 1", null)]
    [InlineData("sk-SECRET", "line 1", null)]
    [InlineData("1BAD='sk-SECRET'", "line 1", null)]
    [InlineData("CLOUD_API_KEY = 'sk-SECRET'", "line 1", null)]
    public void A_malformed_line_is_refused_with_its_line_and_name_never_its_value(string text, string line, string? name)
    {
        var e = Assert.Throws<FormatException>(() => GatewayServicePlanner.ParseEnvironmentFile(text));
        Assert.Contains(line, e.Message, StringComparison.Ordinal);
        if (name is not null)
        {
            Assert.Contains(name, e.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("SECRET", e.Message, StringComparison.Ordinal);
    }
}
