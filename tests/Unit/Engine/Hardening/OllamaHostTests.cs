using OllamaContinuity.Hardening;

namespace OllamaContinuity.Tests.Hardening;

public sealed class OllamaHostTests
{
    // value, scheme, host, port, path, moves off 11434 by accident
    public static TheoryData<string?, string, string, int, string, bool> Table => new()
    {
        { null, "http", "127.0.0.1", 11434, "", false },
        { "", "http", "127.0.0.1", 11434, "", false },
        { "   ", "http", "127.0.0.1", 11434, "", false },
        { "0.0.0.0", "http", "0.0.0.0", 11434, "", false },
        { "0.0.0.0:8080", "http", "0.0.0.0", 8080, "", false },
        { "127.0.0.1:11434", "http", "127.0.0.1", 11434, "", false },
        { " \"127.0.0.1:11435\" ", "http", "127.0.0.1", 11435, "", false },
        { "'10.1.2.3'", "http", "10.1.2.3", 11434, "", false },
        { "http://10.0.0.5", "http", "10.0.0.5", 80, "", true },                 // the port-80 trap
        { "http://10.0.0.5:11434", "http", "10.0.0.5", 11434, "", false },
        { "https://ollama.example.com", "https", "ollama.example.com", 443, "", true },
        { "https://ollama.example.com:8443", "https", "ollama.example.com", 8443, "", false },
        { "http://0.0.0.0/", "http", "0.0.0.0", 80, "", true },
        { "http://host:8080/ollama/api", "http", "host", 8080, "ollama/api", false },
        { "tcp://host", "tcp", "host", 11434, "", false },                       // other schemes keep 11434
        { "[::1]:11434", "http", "::1", 11434, "", false },
        { "::1", "http", "::1", 11434, "", false },                               // too many colons -> bare IP
        { "[::]", "http", "::", 11434, "", false },
        { "[::]:11434", "http", "::", 11434, "", false },
        { ":11434", "http", "", 11434, "", false },                               // empty host: every interface
        { "localhost", "http", "localhost", 11434, "", false },
        { "example.com:abc", "http", "example.com", 11434, "", false },            // invalid port -> default
        { "example.com:99999", "http", "example.com", 11434, "", false },
        { "example.com:", "http", "example.com", 11434, "", false },
        { "http://example.com:bad", "http", "example.com", 80, "", true },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Parse_matches_Ollamas_envconfig_Host(string? value, string scheme, string host, int port, string path, bool movesOff)
    {
        var h = OllamaHost.Parse(value);
        Assert.Equal(scheme, h.Scheme);
        Assert.Equal(host, h.Host);
        Assert.Equal(port, h.Port);
        Assert.Equal(path, h.Path);
        Assert.Equal(movesOff, h.MovesOffDefaultPortByAccident);
        if (movesOff)
        {
            Assert.Contains(h.Warnings, w => w.Contains("not 11434", StringComparison.Ordinal));
        }
    }

    [Theory]
    [InlineData("example.com:abc", "abc")]
    [InlineData("example.com:99999", "99999")]
    [InlineData("example.com:", "''")]
    public void Invalid_port_warns_and_uses_the_default(string value, string shown)
    {
        var h = OllamaHost.Parse(value);
        var w = Assert.Single(h.Warnings);
        Assert.Contains("invalid port", w, StringComparison.Ordinal);
        Assert.Contains(shown, w, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, true, false)]
    [InlineData("127.0.0.2:11434", true, false)]
    [InlineData("[::1]:11434", true, false)]
    [InlineData("localhost", true, false)]
    [InlineData("0.0.0.0", false, true)]
    [InlineData("[::]:11434", false, true)]
    [InlineData(":11434", false, true)]
    [InlineData("192.168.1.10", false, false)]
    public void Loopback_and_all_interfaces_are_recognised(string? value, bool loopback, bool all)
    {
        var h = OllamaHost.Parse(value);
        Assert.Equal(loopback, h.IsLoopback);
        Assert.Equal(all, h.IsAllInterfaces);
    }

    [Fact]
    public void ListenAddress_brackets_IPv6()
    {
        Assert.Equal("[::1]:11434", OllamaHost.Parse("::1").ListenAddress);
        Assert.Equal("http://0.0.0.0:80", OllamaHost.Parse("http://0.0.0.0").ToString());
    }
}
