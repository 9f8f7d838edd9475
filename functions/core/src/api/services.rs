//! The API's service routes: a site's services created, listed, shown and deleted. A route
//! under `/api` belongs to one service of a site at a time.

use bytes::Bytes;
use http::{Response, StatusCode};
use time::OffsetDateTime;

use super::{json_response, ApiError, ControlPlane};
use crate::api_types::{CreateServiceRequest, ServiceView};
use crate::names::{ServiceName, SiteName};
use crate::service::{
    ApiRoute, Concurrency, FunctionConfigError, MemoryMb, Runtime, Service, ServiceSettings,
    TimeoutSeconds,
};

impl From<FunctionConfigError> for ApiError {
    fn from(e: FunctionConfigError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_service", e.to_string())
    }
}

/// A size the request gave, or Lambda's default.
fn or_default<T: TryFrom<u32, Error = FunctionConfigError>>(
    given: Option<u32>,
    default: T,
) -> Result<T, FunctionConfigError> {
    given.map_or(Ok(default), T::try_from)
}

impl ControlPlane {
    fn service_view(&self, service: Service) -> ServiceView {
        let url = self.addresses.service_url(&service.name, &service.site);
        ServiceView::new(service, url)
    }

    pub(super) async fn create_service(
        &self,
        site: &SiteName,
        request: CreateServiceRequest,
    ) -> Result<Response<Bytes>, ApiError> {
        let name = ServiceName::parse(&request.name)?;
        let runtime = request.runtime.as_deref().map(Runtime::parse).transpose()?;
        let settings = ServiceSettings::new(
            runtime,
            request.handler.as_deref(),
            or_default(request.memory, MemoryMb::DEFAULT)?,
            or_default(request.timeout, TimeoutSeconds::DEFAULT)?,
            or_default(request.concurrency, Concurrency::DEFAULT)?,
        )?;
        let route = request.route.as_deref().map(ApiRoute::parse).transpose()?;
        let state = &self.traffic.state;
        if let Some(route) = &route {
            let taken = state
                .list_services(site)
                .await?
                .into_iter()
                .find(|other| other.route.as_ref() == Some(route));
            if let Some(other) = taken {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "route_taken",
                    format!(
                        "{route} already belongs to service {}",
                        other.name,
                        route = route.as_str()
                    ),
                ));
            }
        }
        let service = Service {
            site: site.clone(),
            name,
            settings,
            route,
            created_at: OffsetDateTime::now_utc(),
            production: None,
        };
        state.create_service(&service).await?;
        tracing::info!(site = %site, service = %service.name, "service created");
        Ok(json_response(
            StatusCode::CREATED,
            &self.service_view(service),
        ))
    }

    pub(super) async fn list_services(&self, site: &SiteName) -> Result<Response<Bytes>, ApiError> {
        let views: Vec<ServiceView> = self
            .traffic
            .state
            .list_services(site)
            .await?
            .into_iter()
            .map(|service| self.service_view(service))
            .collect();
        Ok(json_response(StatusCode::OK, &views))
    }

    pub(super) async fn show_service(
        &self,
        site: &SiteName,
        name: &ServiceName,
    ) -> Result<Response<Bytes>, ApiError> {
        let service = self.traffic.state.get_service(site, name).await?;
        Ok(json_response(StatusCode::OK, &self.service_view(service)))
    }

    pub(super) async fn delete_service(
        &self,
        site: &SiteName,
        name: &ServiceName,
    ) -> Result<Response<Bytes>, ApiError> {
        let state = &self.traffic.state;
        let service = state.get_service(site, name).await?;
        state.delete_service(site, name).await?;
        tracing::info!(site = %site, service = %name, "service deleted");
        Ok(json_response(StatusCode::OK, &self.service_view(service)))
    }
}
