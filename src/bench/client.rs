//! The load's HTTP/1.1 client: one keep-alive connection per virtual user (hyper's connection
//! level, no pool), reopened after a failure. [`Transport`] is what the runner drives, so the
//! runner's tests use a simulated server instead.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;

use super::workload::Request;

/// An answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one request and waits for its answer; `Err` when no HTTP answer came (the request
/// counts as a connection error).
pub trait Transport {
    fn send(&mut self, request: &Request) -> impl Future<Output = Result<Answer, ()>>;
}

/// Opens transports, one per virtual user, on the worker thread that uses them.
pub trait Connector: Send + Sync + 'static {
    type Transport: Transport + 'static;
    fn connect(&self) -> impl Future<Output = Self::Transport>;
}

/// Where the server is: its address, `Host` header, base path and credential.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    host: HeaderValue,
    /// The URL's path without its trailing slash ("" for the root).
    pub base_path: String,
    authorization: Option<HeaderValue>,
    credential: Option<String>,
    /// The URL as given, for the report.
    pub url: String,
}

impl Endpoint {
    /// `url` (http only: put a TLS server behind its plain port or run the bench on the host)
    /// with an optional bearer credential (a session token or an API key).
    pub fn new(url: &str, credential: Option<&str>) -> Result<Endpoint, String> {
        let parsed = url::Url::parse(url).map_err(|error| format!("--url {url}: {error}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "--url {url}: only http:// is supported (run the bench where it reaches the server's plain HTTP port)"
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("--url {url}: no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|error| format!("--url {url}: {error}"))?
            .next()
            .ok_or_else(|| format!("--url {url}: the host has no address"))?;
        let host_header = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let authorization = credential
            .map(|credential| HeaderValue::from_str(&format!("Bearer {credential}")))
            .transpose()
            .map_err(|_| "the credential has characters a header cannot carry".to_string())?;
        Ok(Endpoint {
            address,
            host: HeaderValue::from_str(&host_header)
                .map_err(|_| format!("--url {url}: the host cannot be a header"))?,
            base_path: parsed.path().trim_end_matches('/').to_string(),
            authorization,
            credential: credential.map(str::to_string),
            url: url.to_string(),
        })
    }

    /// The same server with another credential.
    pub fn with_credential(&self, credential: &str) -> Result<Endpoint, String> {
        let mut endpoint = self.clone();
        endpoint.credential = Some(credential.to_string());
        endpoint.authorization = Some(
            HeaderValue::from_str(&format!("Bearer {credential}"))
                .map_err(|_| "the credential has characters a header cannot carry".to_string())?,
        );
        Ok(endpoint)
    }
}

impl Endpoint {
    /// The bearer credential requests carry.
    pub fn credential(&self) -> Option<&str> {
        self.credential.as_deref()
    }
}

/// One keep-alive connection to an [`Endpoint`].
pub struct HttpConnection {
    endpoint: std::sync::Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConnection {
    pub fn new(endpoint: std::sync::Arc<Endpoint>) -> HttpConnection {
        HttpConnection {
            endpoint,
            sender: None,
        }
    }

    async fn open(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ()> {
        if self
            .sender
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
        {
            return self.sender.as_mut().ok_or(());
        }
        let stream = tokio::net::TcpStream::connect(self.endpoint.address)
            .await
            .map_err(|_| ())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ())?;
        // The connection's I/O runs beside the requests; it ends when the sender is dropped.
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    fn build(&self, request: &Request) -> Result<hyper::Request<Full<Bytes>>, ()> {
        let endpoint = &self.endpoint;
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(format!("{}{}", endpoint.base_path, request.path))
            .header(HOST, endpoint.host.clone());
        if let Some(authorization) = &endpoint.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        if request.body.is_some() {
            builder = builder.header(
                CONTENT_TYPE,
                if request.plain_text {
                    HeaderValue::from_static("text/plain;charset=UTF-8")
                } else {
                    HeaderValue::from_static("application/json")
                },
            );
        }
        if let Some(agent) = request.user_agent {
            builder = builder.header(USER_AGENT, HeaderValue::from_static(agent));
        }
        if let Some(address) = &request.forwarded_for {
            builder = builder.header("x-forwarded-for", address.as_str());
        }
        builder
            .body(Full::new(request.body.clone().unwrap_or_default()))
            .map_err(|_| ())
    }
}

impl Transport for HttpConnection {
    async fn send(&mut self, request: &Request) -> Result<Answer, ()> {
        let outgoing = self.build(request)?;
        let sender = self.open().await?;
        if sender.ready().await.is_err() {
            self.sender = None;
            return Err(());
        }
        let answer = match sender.send_request(outgoing).await {
            Ok(answer) => answer,
            Err(_) => {
                self.sender = None;
                return Err(());
            }
        };
        let status = answer.status().as_u16();
        match answer.into_body().collect().await {
            Ok(body) => Ok(Answer {
                status,
                body: body.to_bytes(),
            }),
            Err(_) => {
                self.sender = None;
                Err(())
            }
        }
    }
}

/// Opens [`HttpConnection`]s to one endpoint.
#[derive(Debug, Clone)]
pub struct HttpConnector(pub std::sync::Arc<Endpoint>);

impl Connector for HttpConnector {
    type Transport = HttpConnection;

    async fn connect(&self) -> HttpConnection {
        HttpConnection::new(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_a_plain_http_url_with_an_optional_credential() {
        let endpoint = Endpoint::new("http://127.0.0.1:3000/base/", Some("tab_x")).expect("valid");
        assert_eq!(endpoint.address, "127.0.0.1:3000".parse().expect("address"));
        assert_eq!(endpoint.base_path, "/base");
        assert_eq!(endpoint.host, "127.0.0.1:3000");
        assert_eq!(
            endpoint
                .authorization
                .as_ref()
                .map(|value| value.to_str().ok()),
            Some(Some("Bearer tab_x"))
        );
        assert!(Endpoint::new("https://example.com", None)
            .expect_err("https")
            .contains("only http://"));
        assert!(Endpoint::new("not a url", None).is_err());
        assert!(Endpoint::new("http://127.0.0.1:1", Some("bad\nkey")).is_err());
    }
}
